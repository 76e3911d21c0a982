"""PSNR gain of the total-variation denoiser, its intensity scale by dose, and its cost.

Synthetic micrographs with a known noiseless image (expected counts) are recorded with Poisson
shot noise plus Gaussian read noise, denoised with :func:`daskmic.ops.denoise.tv_denoise`
(default mode: output on the input's scale) and compared with the noiseless image:
``PSNR = 10 log10(range(truth)² / mean((estimate - truth)²))``. Scenes:

* ``blocks``: piecewise-constant rectangles and discs, 10–60 counts (the model TV assumes);
* ``particles``: soft-edged discs 8–25 px in radius, 25 % darker than a 30-count background,
  a low-contrast, cryo-EM-like scene.

The scale table (markdown, the README's) scales both scenes to a mean of 0.5 to 1000
counts/px, records them with Poisson noise alone and with 1-count Gaussian read noise added,
and denoises them with the protocol's 50 iterations. It prints the means of the input, the
noiseless image, the output and the reference's iterate mapped back to the input's range
(``X (max - min) + min``, the default output before issue #14), and the PSNR of the noisy input
and of the output after the least-squares affine fit ``a * image + b`` to the noiseless image
(contrast and offset do not count; the output's slope ``a`` is printed too: 1 when the
output's contrast is the noiseless image's, near 0 when the output is mostly noise), and that
PSNR of the reference's iterate.

Then one 4096² float32 micrograph is denoised once with the protocol's 50 iterations and the
wall-clock seconds, CPU seconds and peak numpy memory are printed. Run from the repository root::

    .venv/bin/python benchmarks/denoise_psnr.py [--size 512] [--iterations 1,2,5,10,20,50,100]
                                                [--scale-size 256] [--timing-size 4096]
                                                [--no-timing]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from daskmic.ops.denoise import tv_denoise

READ_NOISE_COUNTS = 1.0
SCALE_MEANS_COUNTS = (0.5, 2.0, 10.0, 100.0, 1000.0)
SCALE_ITERATIONS = 50


def blocks_scene(n: int, rng: np.random.Generator) -> np.ndarray:
    """Expected counts of a piecewise-constant scene: random rectangles and discs."""
    truth = np.full((n, n), 10.0)
    yy, xx = np.mgrid[:n, :n]
    for _ in range(max(4, n // 32)):
        level = rng.choice([20.0, 35.0, 60.0])
        y0, x0 = rng.integers(0, n, 2)
        if rng.random() < 0.5:
            h, w = rng.integers(n // 16, n // 4, 2)
            truth[y0 : y0 + h, x0 : x0 + w] = level
        else:
            radius = rng.uniform(n / 32, n / 8)
            truth[(yy - y0) ** 2 + (xx - x0) ** 2 < radius**2] = level
    return truth


def particles_scene(n: int, rng: np.random.Generator) -> np.ndarray:
    """Expected counts of soft-edged dark discs (particles) on a flat 30-count background."""
    background, contrast, edge_px = 30.0, 0.25, 1.5
    darkening = np.zeros((n, n))
    for _ in range(n * n // 4000):
        y0, x0 = rng.uniform(0, n, 2)
        radius = rng.uniform(8.0, 25.0)
        reach = int(radius + 20 * edge_px)  # beyond it the edge profile is < 1e-8
        rows = slice(max(0, int(y0) - reach), min(n, int(y0) + reach + 1))
        cols = slice(max(0, int(x0) - reach), min(n, int(x0) + reach + 1))
        yy, xx = np.mgrid[rows, cols]
        profile = 0.5 * (1.0 - np.tanh((np.hypot(yy - y0, xx - x0) - radius) / (2 * edge_px)))
        np.maximum(darkening[rows, cols], profile, out=darkening[rows, cols])
    return background * (1.0 - contrast * darkening)


def record(
    truth: np.ndarray, rng: np.random.Generator, read_noise: float = READ_NOISE_COUNTS
) -> np.ndarray:
    """Poisson shot noise plus Gaussian read noise (std in counts), as a float32 micrograph."""
    noisy = rng.poisson(truth) + rng.normal(0.0, read_noise, truth.shape)
    return noisy.astype(np.float32)


def psnr_db(estimate: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB with the noiseless image's range as the peak."""
    mse = np.mean((estimate.astype(np.float64) - truth) ** 2)
    return float(10.0 * np.log10((truth.max() - truth.min()) ** 2 / mse))


def affine_fit(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """PSNR in dB of the least-squares ``a * estimate + b`` to the noiseless image, and ``a``."""
    design = np.stack([estimate.ravel().astype(np.float64), np.ones(estimate.size)], axis=1)
    coefficients = np.linalg.lstsq(design, truth.ravel(), rcond=None)[0]
    fitted = (design @ coefficients).reshape(truth.shape)
    return psnr_db(fitted, truth), float(coefficients[0])


def scale_table(size: int, seed: int) -> None:
    """Print the markdown table of means and affine-fit PSNR from 0.5 to 1000 counts/px."""
    rng = np.random.default_rng(seed)
    scenes = {"blocks": blocks_scene(size, rng), "particles": particles_scene(size, rng)}
    print(
        f"Intensity scale of --denoise {SCALE_ITERATIONS} on {size}x{size} frames (means in "
        "counts/px; PSNR in dB after the affine fit to the noiseless image)\n"
    )
    print(
        "| scene | noise | mean in | noiseless | out (Δ in, Δ noiseless) | reference's "
        "iterate, mapped back | PSNR in | PSNR out | fit slope a | PSNR, reference's iterate |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, scene in scenes.items():
        for read_noise in (0.0, READ_NOISE_COUNTS):
            noise = "Poisson" if read_noise == 0 else f"+ N(0, {read_noise:g}²)"
            for mean_counts in SCALE_MEANS_COUNTS:
                truth = scene * (mean_counts / scene.mean())
                noisy = record(truth, rng, read_noise)
                out = tv_denoise(noisy, SCALE_ITERATIONS)
                iterate = tv_denoise(noisy, SCALE_ITERATIONS, xmipp_compat=True)
                reference = iterate * (float(noisy.max()) - float(noisy.min())) + noisy.min()
                mean_in, mean_out = (float(a.mean(dtype=np.float64)) for a in (noisy, out))
                psnr_in, _ = affine_fit(noisy, truth)
                psnr_out, contrast = affine_fit(out, truth)
                psnr_reference, _ = affine_fit(reference, truth)
                print(
                    f"| {name} | {noise} | {mean_in:.4g} | {truth.mean():.4g} | {mean_out:.4g} "
                    f"({100 * (mean_out / mean_in - 1):+.2f} %, "
                    f"{100 * (mean_out / truth.mean() - 1):+.2f} %) | "
                    f"{reference.mean(dtype=np.float64):.4g} | {psnr_in:.2f} | {psnr_out:.2f} | "
                    f"{contrast:.2f} | {psnr_reference:.2f} |"
                )
    print()


def psnr_table(size: int, iterations: list[int], seed: int) -> None:
    """Print PSNR and gain over the noisy image for each scene and iteration count."""
    rng = np.random.default_rng(seed)
    scenes = {"blocks": blocks_scene(size, rng), "particles": particles_scene(size, rng)}
    noisy = {name: record(truth, rng) for name, truth in scenes.items()}
    print(f"PSNR (dB) against the noiseless {size}x{size} image; gain over the noisy input")
    print(f"{'iterations':>10}" + "".join(f"  {name:<26}" for name in scenes))
    base = {name: psnr_db(noisy[name], truth) for name, truth in scenes.items()}
    print(f"{'noisy':>10}" + "".join(f"  {base[name]:>7.2f}{'':<19}" for name in scenes))
    for count in iterations:
        cells = []
        for name, truth in scenes.items():
            out, energies = tv_denoise(noisy[name], count, return_energies=True)
            done = len(energies) - 1
            ran = "" if done == count else f" [stopped at {done}]"
            value = psnr_db(out, truth)
            cells.append(f"{value:>7.2f} ({value - base[name]:+6.2f}){ran}")
        print(f"{count:>10}" + "".join(f"  {cell:<26}" for cell in cells))


def time_one(size: int, iterations: int, seed: int) -> None:
    """Denoise one ``size``² float32 micrograph once; print seconds and peak memory."""
    rng = np.random.default_rng(seed)
    image = record(particles_scene(size, rng), rng)
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    tv_denoise(image, iterations)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    copies = peak / (image.size * 8)
    print(
        f"{size}x{size} float32, {iterations} iterations: {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"peak {peak / 2**20:.0f} MiB ({copies:.1f} float64 copies of the image)"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print the scale table, the PSNR table, then the timing line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="PSNR image size (px)")
    parser.add_argument("--iterations", default="1,2,5,10,20,50,100", help="comma list")
    parser.add_argument("--scale-size", type=int, default=256, help="scale table size (px)")
    parser.add_argument("--timing-size", type=int, default=4096, help="timed image size (px)")
    parser.add_argument("--timing-iterations", type=int, default=50)
    parser.add_argument("--no-timing", action="store_true", help="skip the timed micrograph")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scale_table(args.scale_size, args.seed)
    psnr_table(args.size, [int(v) for v in args.iterations.split(",")], args.seed)
    if not args.no_timing:
        time_one(args.timing_size, args.timing_iterations, args.seed)


if __name__ == "__main__":
    main()
