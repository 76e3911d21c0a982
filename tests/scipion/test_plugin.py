"""The Scipion plugin (``deploy/scipion``): its protocols run headless in fresh projects.

pyworkflow's test helpers (``BaseTest``, ``setupTestProject``) drive a project in the pwem
environment (``pwem/run_protocols.py``): ``ProtImportMicrographs`` imports synthetic
micrographs, then both daskmic protocols run on its output, closed or still streaming. Their
outputs must be those of the command line on the same set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from daskmic.cli import main

pytestmark = [pytest.mark.scipion, pytest.mark.slow]

SCRIPTS = Path(__file__).resolve().parent / "pwem"
PREPROCESS = {"doDownsample": True, "downFactor": 2.0, "doInvert": True, "doNormalize": True}
CLI_PREPROCESS = ["--downsample", "2.0", "--invert", "--normalize"]


@dataclass(frozen=True)
class CliOutputs:
    """`daskmic preprocess` and `daskmic tilt` (re-split by `daskmic select`) on a pwem set."""

    preprocess: Path
    tilt: Path
    mean_threshold: float


@pytest.fixture(scope="module")
def cli(pwem, raw_1024, acquisition, client, tmp_path_factory) -> CliOutputs:
    """The command line's outputs on a closed pwem set of ``raw_1024``, with a threshold
    between the two lowest mean correlations so that the split has both kinds."""
    project = tmp_path_factory.mktemp("cli-project")
    set_file = project / "micrographs.sqlite"
    pwem.make_set(set_file, project, files=[str(p) for p in raw_1024], **acquisition)
    common = ["--no-dashboard", "--no-report", "--cluster", client.scheduler.address]
    pre, tilt = project / "preprocess", project / "tilt"
    assert main(["preprocess", str(set_file), "-o", str(pre), *CLI_PREPROCESS, *common]) == 0
    assert main(["tilt", str(set_file), "-o", str(tilt), "--std-threshold", "1.0", *common]) == 0
    means = sorted(pd.read_csv(tilt / "tilt.csv")["tilt_mean_corr"])
    threshold = float((means[0] + means[1]) / 2)
    assert main(["select", str(tilt), "--mean-threshold", str(threshold),
                 "--std-threshold", "1.0"]) == 0
    return CliOutputs(pre, tilt, threshold)


def _run_protocols(pwem, tmp_path: Path, spec: dict) -> dict:
    spec_file, result_file = tmp_path / "spec.json", tmp_path / "result.json"
    spec_file.write_text(json.dumps(spec))
    pwem.run(str(SCRIPTS / "run_protocols.py"), str(spec_file), str(result_file), cwd=tmp_path)
    return json.loads(result_file.read_text())


def _spec(name: str, raw: list[Path], acquisition: dict, threshold: float) -> dict:
    return {
        "project": name,
        "files": [str(p) for p in raw],
        **{k: acquisition[k] for k in ("sampling", "voltage", "cs", "q0")},
        "preprocess": {**PREPROCESS, "daskmicWorkers": 1},
        "tilt": {"meanCorr_threshold": threshold, "stdCorr_threshold": 1.0, "daskmicWorkers": 1},
    }


def _assert_same_as_cli(result: dict, cli: CliOutputs, input_size: int) -> None:
    """Same micrographs, pixels, sampling, statistics and split as the command line."""
    project, pre, tilt = Path(result["project"]), cli.preprocess, cli.tilt
    outputs = result["outputs"]
    micrographs = outputs["preprocess.outputMicrographs"]
    assert micrographs["stream_state"] == 2 and micrographs["size"] == input_size
    star = pd.read_csv(pre / "micrographs.csv").set_index("micrograph")
    for item in micrographs["items"]:
        name = Path(item["micName"]).stem
        assert item["sampling"] == pytest.approx(star.loc[name, "output_pixel_size_A"])
        with mrcfile.open(project / item["filename"]) as a, mrcfile.open(
            pre / "mrc" / f"{name}.mrc"
        ) as b:
            np.testing.assert_array_equal(a.data, b.data)
    table = pd.read_csv(tilt / "tilt.csv").set_index("micrograph")
    split = {}
    names = {"outputMicrographs": "accepted", "discardedMicrographs": "discarded"}
    for output, status in names.items():
        part = outputs.get(f"tilt.{output}", {"items": [], "stream_state": 2})
        assert part["stream_state"] == 2
        for item in part["items"]:
            name = Path(item["micName"]).stem
            split[name] = status
            for column in ("tilt_mean_corr", "tilt_std_corr", "tilt_min_corr", "tilt_max_corr"):
                assert item["tilt"][f"_{column}"] == pytest.approx(table.loc[name, column])
            assert (project / item["psd"]).is_file()
    assert split == dict(table["status"])
    assert set(split.values()) == {"accepted", "discarded"}


def test_protocols_give_the_cli_outputs(pwem, raw_1024, acquisition, cli, tmp_path):
    """Both protocols on an imported (closed) set, headless in a fresh project."""
    spec = _spec("DaskmicClosed", raw_1024, acquisition, cli.mean_threshold)
    _assert_same_as_cli(_run_protocols(pwem, tmp_path, spec), cli, len(raw_1024))


def test_protocols_stream(pwem, raw_1024, acquisition, cli, tmp_path):
    """The import streams (its set open) while the protocols run; outputs open, then closed.

    The first micrograph is imported alone; once a daskmic protocol has an output (open, with
    part of the set), the others arrive; the import is then stopped (closing its set), and the
    protocols close theirs. The result equals the command line on the closed set.
    """
    spec = _spec("DaskmicStreaming", raw_1024, acquisition, cli.mean_threshold)
    spec.update(stream=True, steps=[[str(raw_1024[0])], [str(p) for p in raw_1024[1:]]])
    result = _run_protocols(pwem, tmp_path, spec)
    (first,) = result["first_outputs"]
    assert first["stream_state"] == 1 and 1 <= first["size"] < len(raw_1024)
    assert result["input"]["size"] == len(raw_1024) and result["input"]["stream_state"] == 2
    _assert_same_as_cli(result, cli, len(raw_1024))


VALIDATE = """
import json, sys
from daskmic_scipion import Plugin
from daskmic_scipion.protocols import DaskmicProtTiltAnalysis
print(json.dumps({"plugin": Plugin.validateDaskmic(),
                  "form": DaskmicProtTiltAnalysis().validate()}))
"""


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("/nonexistent/daskmic", "no such executable"),
        ("/bin/true", "is not a daskmic executable"),
        (None, None),
    ],
)
def test_daskmic_bin_is_validated(pwem, tmp_path, program, expected):
    """A missing or wrong DASKMIC_BIN is a clear error in the form; daskmic's own passes."""
    env = pwem.env()
    if program is not None:
        env["DASKMIC_BIN"] = program
    done = pwem.run("-c", VALIDATE, cwd=tmp_path, env=env)
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    if expected is None:
        assert errors["plugin"] == []
        assert not any("DASKMIC_BIN" in e for e in errors["form"])
    else:
        (message,) = errors["plugin"]
        assert "DASKMIC_BIN" in message and expected in message and program in message
        assert message in errors["form"]


XMIPP_FORMS = {
    "DaskmicProtPreprocessMicrographs": {
        "doCrop": (False, "Crop borders?"),
        "cropPixels": (10, "Pixels to crop"),
        "doLog": (False, "Take logarithm?"),
        "logA": (4.431, "a"),
        "logB": (0.402, "b"),
        "logC": (336.6, "c"),
        "doRemoveBadPix": (False, "Remove bad pixels?"),
        "mulStddev": (5, "Multiple of Stddev"),
        "doInvert": (False, "Invert contrast?"),
        "doDownsample": (False, "Downsample micrographs?"),
        "downFactor": (2.0, "Downsampling factor"),
        "doDenoise": (False, "Denoising"),
        "maxIteration": (50, "Max. number of iterations"),
        "doSmooth": (False, "Gaussian filter"),
        "sigmaConvolution": (2.0, "Gaussian sigma"),
        "doHighPass": (False, "Highpass filter"),
        "highCutoff": (0.002, "Cutoff frequency"),
        "highRaised": (0.001, "Transition bandwidth"),
        "doLowPass": (False, "Lowpass filter"),
        "lowCutoff": (0.4, "Cutoff frequency"),
        "lowRaised": (0.001, "Transition bandwidth"),
        "doNormalize": (False, "Normalize micrograph?"),
    },
    "DaskmicProtTiltAnalysis": {
        "autoWindow": (True, "Estimate automatically the window size?"),
        "window_size": (1024, "Window size"),
        "objective_resolution": (3.0, "Objective resolution"),
        "meanCorr_threshold": (0.5, "Mean correlation threshold"),
        "stdCorr_threshold": (0.1, "STD correlation threshold"),
    },
}
"""The Xmipp protocols' parameters: name -> (default, label) (spec A.1, B.1; the seeds)."""

FORMS = """
import json
from daskmic_scipion import protocols
forms = {}
for name in ("DaskmicProtPreprocessMicrographs", "DaskmicProtTiltAnalysis"):
    protocol = getattr(protocols, name)()
    forms[name] = {p: [getattr(protocol, p).get(), protocol.getParam(p).label.get()]
                   for p, _ in protocol.iterDefinitionAttributes()}
print(json.dumps(forms))
"""


def test_forms_mirror_xmipp(pwem, tmp_path):
    """Xmipp's parameter names, defaults and labels, plus daskmic's own parameters."""
    done = pwem.run("-c", FORMS, cwd=tmp_path)
    forms = json.loads(done.stdout.strip().splitlines()[-1])
    for protocol, expected in XMIPP_FORMS.items():
        form = forms[protocol]
        assert {name: tuple(form[name]) for name in expected} == expected
        assert {"inputMicrographs", "daskmicCluster", "schedulerAddress"} <= set(form)
    assert {"estimateAngle", "maxTilt"} <= set(forms["DaskmicProtTiltAnalysis"])

