"""The tilt estimate does not depend on the BLAS kernel or its thread count (issue 14, item 1).

Each OpenBLAS core type (the kernels picked for an Intel or an AMD CPU) runs in its own
process, because OpenBLAS reads ``OPENBLAS_CORETYPE`` once when it loads; inside the process
threadpoolctl sets 1, 2 and 4 BLAS threads in turn. A float32 matrix product in the estimator
made the Haswell/Zen kernels give different angles with 1 and 2 threads (1.5e-4°), which is
what made the lazy face (driver, many BLAS threads) and the batch face (workers, one) differ.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from daskmic.datasets import synthesize_micrograph

PIXEL_SIZE_A = 2.0
NUMBERS = ("tilt_angle_deg", "tilt_axis_deg", "tilt_angle_err_deg", "defocus_mean_A")

_SCRIPT = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from daskmic.tilt.angle import estimate_tilt

image = np.load(sys.argv[1])
runs = {}
for threads in (1, 2, 4):
    with threadpool_limits(limits=threads, user_api="blas"):
        row = estimate_tilt(image, float(sys.argv[2])).as_row()
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    runs[threads] = {name: row[name] for name in sys.argv[3:]}
    runs[threads]["blas_threads"] = sorted({pool["num_threads"] for pool in blas})
apis = sorted({pool["internal_api"] for pool in blas})
print(json.dumps({"runs": runs, "apis": apis}))
"""


def _core_types() -> list[str | None]:
    """OpenBLAS kernels this CPU can run (None: the one OpenBLAS picks itself)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return [None]
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    kinds: list[str | None] = [None, "Prescott"]
    if " avx " in flags:
        kinds.append("Sandybridge")
    if " avx2 " in flags and " fma " in flags:
        kinds += ["Haswell", "Zen"]
    return kinds


def _estimates(image_path, core_type) -> dict:
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if core_type is not None:
        env["OPENBLAS_CORETYPE"] = core_type
    command = [sys.executable, "-c", _SCRIPT, str(image_path), str(PIXEL_SIZE_A), *NUMBERS]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_estimate_is_the_same_for_every_blas_kernel_and_thread_count(tmp_path):
    image, _ = synthesize_micrograph(
        (768, 768),
        pixel_size_A=PIXEL_SIZE_A,
        phase_std=0.3,
        defocus_A=15000.0,
        tilt_angle_deg=45.0,
        tilt_axis_deg=30.0,
        seed=1,
    )
    np.save(tmp_path / "image.npy", image)
    runs = {}
    for core_type in _core_types():
        found = _estimates(tmp_path / "image.npy", core_type)
        if core_type is not None and found["apis"] != ["openblas"]:
            continue  # another BLAS ignores OPENBLAS_CORETYPE: the default run covers it
        for threads, numbers in found["runs"].items():
            assert numbers.pop("blas_threads") == [int(threads)]  # the limit took effect
            runs[f"{core_type or 'default'}, {threads} threads"] = numbers
    reference = runs["default, 1 threads"]
    assert 30.0 < reference["tilt_angle_deg"] < 60.0  # a real estimate, not a NaN
    for label, numbers in runs.items():
        for name in NUMBERS:
            # bit for bit: the estimator keeps every sum out of the BLAS's reach
            assert numbers[name] == reference[name], f"{name} with {label}"

