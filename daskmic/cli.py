"""``daskmic`` on the command line: argument parsing only; the work is the public API's.

The options and their defaults come from the parameter objects (:class:`daskmic.
PreprocessParams`, :class:`daskmic.TiltParams`, ...); every command calls ``daskmic.<name>``.

Exit codes: 0 all micrographs done; 1 some failed (each with its reason in the tables, the rest
written); 2 usage error, nothing started; 3 internal error (a traceback: please report it).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import daskmic
from daskmic import PreprocessParams, RunConfig, TiltParams, UsageError
from daskmic.preprocessing.params import DEFAULTS
from daskmic.run.config import StreamOptions
from daskmic.tilt.ctf import Optics

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# One line per code, all equally indented: the terminal shows it as is, and the documentation
# (which reads it as reStructuredText) as a definition list.
EPILOG = """exit codes:
  0  every micrograph done
  1  some micrographs failed, each with its reason in the tables; the others are written
  2  usage error (invalid option, input or output folder): refused before any work
  3  internal error: the run stopped on an unexpected error, printed with its traceback
"""


def _shown(name: str) -> str:
    """A preprocessing option's default, as the help shows it."""
    value = DEFAULTS[name]
    return " ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"


def _preprocess_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing (in this order; a flag alone = default)")
    group.add_argument(
        "--crop",
        nargs="?",
        const=True,
        type=int,
        metavar="N",
        help=f"remove N px from each border (default {_shown('crop')})",
    )
    group.add_argument(
        "--log",
        nargs="*",
        type=float,
        metavar="A B C",
        help=f"a - b*ln(x + c) (default {_shown('log')})",
    )
    group.add_argument(
        "--bad-pixels",
        nargs="?",
        const=True,
        type=float,
        metavar="K",
        help=f"replace outliers beyond mean ± K·std (default {_shown('bad_pixels')})",
    )
    group.add_argument("--invert", action="store_true", help="multiply by -1")
    group.add_argument(
        "--downsample",
        nargs="?",
        const=True,
        type=float,
        metavar="F",
        help=f"Fourier-crop by factor F > 1 (default {_shown('downsample')})",
    )
    group.add_argument(
        "--denoise",
        nargs="?",
        const=True,
        type=int,
        metavar="ITERS",
        help=f"total-variation denoising, ITERS iterations (default {_shown('denoise')})",
    )
    group.add_argument(
        "--gaussian",
        nargs="?",
        const=True,
        type=float,
        metavar="SIGMA",
        help=f"Gaussian, real-space sigma in px (default {_shown('gaussian')})",
    )
    group.add_argument(
        "--highpass",
        nargs="*",
        type=float,
        metavar="CUTOFF WIDTH",
        help=f"raised cosine, cycles/px (default {_shown('highpass')})",
    )
    group.add_argument(
        "--lowpass",
        nargs="*",
        type=float,
        metavar="CUTOFF WIDTH",
        help=f"raised cosine, cycles/px (default {_shown('lowpass')})",
    )
    group.add_argument("--normalize", action="store_true", help="mean 0, std 1")


def _tilt_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tilt analysis")
    group.add_argument(
        "--window-size",
        default=TiltParams.window_size,
        type=_window_size,
        metavar="auto|N",
        help=f"corner window edge in px (default {TiltParams.window_size})",
    )
    group.add_argument(
        "--resolution",
        type=float,
        default=TiltParams.resolution_A,
        metavar="A",
        help=f"objective resolution in Å (default {TiltParams.resolution_A:g})",
    )
    _threshold_options(group)
    _angle_options(group)


def _window_size(value: str) -> str | int:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        message = f"expected auto or a whole number, got {value!r}"
        raise argparse.ArgumentTypeError(message) from None


def _angle_options(group: Any) -> None:
    group.add_argument(
        "--angle",
        action="store_true",
        help="also estimate the specimen tilt angle and axis (local defocus)",
    )


def _threshold_options(group: Any) -> None:
    group.add_argument(
        "--mean-threshold",
        type=float,
        default=TiltParams.mean_threshold,
        metavar="T",
        help=f"accept when the mean correlation is above T (default {TiltParams.mean_threshold})",
    )
    group.add_argument(
        "--std-threshold",
        type=float,
        default=TiltParams.std_threshold,
        metavar="T",
        help=f"... and their std below T (default {TiltParams.std_threshold})",
    )
    group.add_argument(
        "--max-tilt-deg",
        type=float,
        metavar="T",
        help="with --angle: also discard tilts above T degrees",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--pixel-size",
        type=float,
        metavar="A",
        help="pixel size in Å (overrides headers and tables)",
    )
    parser.add_argument(
        "--xmipp-compat",
        action="store_true",
        help="reproduce the Xmipp reference's quirks number for number",
    )
    parser.add_argument(
        "--voltage",
        type=float,
        metavar="KV",
        help=f"kV (default: input table's, else {Optics.voltage_kV:g})",
    )
    parser.add_argument(
        "--cs",
        type=float,
        metavar="MM",
        help=f"spherical aberration in mm (default: input table's, else "
        f"{Optics.spherical_aberration_mm:g})",
    )
    parser.add_argument(
        "--amplitude-contrast",
        type=float,
        help=f"default: input table's, else {Optics.amplitude_contrast:g}",
    )
    parser.add_argument(
        "--no-stack",
        action="store_true",
        help="do not store the processed pixels in micrographs.zarr",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="restart an output folder made with other parameters",
    )
    _storage_option(parser)
    _report_option(parser)
    _cluster_options(parser)


def _storage_options(text: str) -> dict[str, Any]:
    """``--storage-options``: a JSON object (argparse reports anything else as a usage error)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object is expected, got {text!r}")
    return value


def _storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-options",
        type=_storage_options,
        metavar="JSON",
        help='fsspec options for every URL (s3://, gs://, https:// ...) read or written, e.g. '
        '\'{"anon": true}\' or \'{"client_kwargs": {"endpoint_url": "http://..."}}\' '
        "(default: each backend's environment and config files)",
    )


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="process only the first N micrographs (by name), to try settings",
    )


def _report_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-report", action="store_true", help="do not write OUT/report.html at the end"
    )


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where to run")
    group.add_argument(
        "--cluster",
        default="local",
        help="local (default), slurm, pbs, kubernetes, or a scheduler address",
    )
    group.add_argument("--workers", type=int, help="number of workers (or jobs)")
    group.add_argument("--threads-per-worker", type=int)
    group.add_argument("--memory-limit", help="per worker, e.g. 4GiB")
    group.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not serve the scheduler's dashboard (starts about 0.7 s faster)",
    )


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help ends with the exit codes (for the command and each step)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EPILOG)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``daskmic`` argument parser."""
    parser = _Parser(prog="daskmic", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pre = commands.add_parser("preprocess", help="preprocess micrographs")
    pre.add_argument("inputs", nargs="+", help="files, globs, folders or a STAR/xmd/CSV table")
    _preprocess_options(pre)
    _run_options(pre)
    _limit_option(pre)
    tilt = commands.add_parser("tilt", help="tilt-analysis screen")
    tilt.add_argument("inputs", nargs="+")
    _tilt_options(tilt)
    _run_options(tilt)
    _limit_option(tilt)
    select = commands.add_parser("select", help="re-split a tilt run with new thresholds")
    select.add_argument("output", help="output folder of a tilt run (a path or a URL)")
    _threshold_options(select)
    _storage_option(select)
    run = commands.add_parser("run", help="preprocess and/or tilt from one config file")
    run.add_argument("config", help="YAML configuration (see README)")
    run.add_argument("inputs", nargs="*", help="inputs (else the config's `inputs`)")
    run.add_argument("-o", "--output", help="output folder (else the config's `output`)")
    _limit_option(run)
    run.add_argument("--overwrite", action="store_true")
    _storage_option(run)
    _report_option(run)
    _cluster_options(run)
    report = commands.add_parser("report", help="write OUT/report.html, the QC page of a run")
    report.add_argument("output", help="output folder of a run (a path or a URL)")
    report.add_argument(
        "--serve",
        nargs="?",
        type=int,
        const=8000,
        metavar="PORT",
        help="then serve the page on 127.0.0.1:PORT (default 8000) until Ctrl-C, for an SSH "
        "tunnel; a page a running run keeps live is served as it is",
    )
    _storage_option(report)
    _watch_parser(commands)
    demo = commands.add_parser("demo", help="synthesize a small dataset and run everything")
    demo.add_argument("-o", "--output", default="daskmic-demo")
    demo.add_argument("--micrographs", type=int, default=8)
    _cluster_options(demo)
    return parser


def _watch_parser(commands: Any) -> None:
    watch = commands.add_parser(
        "watch", help="process micrographs as they arrive in a folder (streaming)"
    )
    watch.add_argument(
        "folder",
        help="the folder the microscope writes to, a prefix of an object store "
        "(s3://bucket/incoming: new keys are new micrographs), or a Scipion set (.sqlite) to "
        "follow until it is closed",
    )
    stream = watch.add_argument_group("stream")
    stream.add_argument(
        "--batch-size",
        type=int,
        default=StreamOptions.batch_size,
        metavar="N",
        help=f"rebuild the tables every N micrographs (default {StreamOptions.batch_size})",
    )
    stream.add_argument(
        "--pattern",
        default=StreamOptions.pattern,
        metavar="P",
        help="glob of the files to take, relative to FOLDER; ** recurses (default: the .mrc files)",
    )
    stream.add_argument(
        "--close-marker",
        default=StreamOptions.close_marker,
        metavar="NAME",
        help="stop once FOLDER/NAME exists and all is done "
        f"(default {StreamOptions.close_marker})",
    )
    stream.add_argument(
        "--idle-timeout",
        type=float,
        default=StreamOptions.idle_timeout,
        metavar="S",
        help="stop once nothing has arrived for S seconds",
    )
    stream.add_argument(
        "--settle",
        type=float,
        default=StreamOptions.settle_seconds,
        metavar="S",
        help="a file is complete once unchanged for S seconds "
        f"(default {StreamOptions.settle_seconds:g}; a listed object is complete at once)",
    )
    stream.add_argument(
        "--poll",
        type=float,
        default=StreamOptions.poll_seconds,
        metavar="S",
        help=f"look at FOLDER every S seconds (default {StreamOptions.poll_seconds:g})",
    )
    watch.add_argument(
        "--config",
        metavar="CONFIG.yaml",
        help="steps and options from a config file (as for `run`)",
    )
    watch.add_argument("--tilt", action="store_true", help="also run the tilt-analysis screen")
    _preprocess_options(watch)
    _tilt_options(watch)
    _run_options(watch)


def _optional(value: Any) -> Any:
    """Map ``nargs='*'`` lists: [] → True (defaults), [a] → a, [a, b] → tuple, None → None
    (a bare cutoff takes the default width: :meth:`PreprocessParams.from_options`)."""
    if isinstance(value, list):
        return (tuple(value) if len(value) > 1 else value[0]) if value else True
    return value


def preprocess_params(args: argparse.Namespace) -> PreprocessParams:
    """The preprocessing parameters a command line asks for."""
    return PreprocessParams.from_options(
        crop=args.crop,
        log=_optional(args.log),
        bad_pixels=args.bad_pixels,
        invert=args.invert,
        downsample=args.downsample,
        denoise=args.denoise,
        gaussian=args.gaussian,
        highpass=_optional(args.highpass),
        lowpass=_optional(args.lowpass),
        normalize=args.normalize,
        xmipp_compat=args.xmipp_compat,
    )


def tilt_params(args: argparse.Namespace) -> TiltParams:
    """The tilt-analysis parameters a command line asks for."""
    return TiltParams(
        window_size=args.window_size,
        resolution_A=args.resolution,
        mean_threshold=args.mean_threshold,
        std_threshold=args.std_threshold,
        xmipp_compat=args.xmipp_compat,
        estimate_angle=args.angle,
        max_tilt_deg=args.max_tilt_deg,
    )


def _config(args: argparse.Namespace, *, preprocess: bool, tilt: bool) -> RunConfig:
    return RunConfig(
        preprocess=preprocess_params(args) if preprocess else None,
        tilt=tilt_params(args) if tilt else None,
        pixel_size_A=args.pixel_size,
        optics={
            "voltage_kV": args.voltage,
            "spherical_aberration_mm": args.cs,
            "amplitude_contrast": args.amplitude_contrast,
        },
        write_stack=not args.no_stack,
        storage_options=args.storage_options or {},
    )


def _config_file(args: argparse.Namespace) -> tuple[Any, Any, RunConfig]:
    """``daskmic.read_run_config(args.config)``; ``--storage-options`` replace the file's."""
    inputs, output, config = daskmic.read_run_config(args.config)
    if args.storage_options is not None:
        config = dataclasses.replace(config, storage_options=args.storage_options)
    return inputs, output, config


def _cluster_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cluster": args.cluster,
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "memory_limit": args.memory_limit,
        "dashboard": not args.no_dashboard,
    }


def _report(summary: Any, config: RunConfig) -> int:
    from daskmic.run.progress import print_screen, print_summary

    print_summary(summary)
    if config.tilt is not None:
        print_screen(summary, config.tilt)
    if summary.report is not None:
        print(f"report in {summary.report}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def _write_report(out_dir: str, storage_options: dict[str, Any] | None = None) -> None:
    print(f"report in {daskmic.write_report(out_dir, storage_options=storage_options)}")


@contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The command's ``distributed.Client``, started before the run's modules are imported.

    A local cluster's workers then start while the driver imports the rest and reads the
    micrographs' headers, instead of after.
    """
    with daskmic.connect(wait=False, **_cluster_kwargs(args)) as client:
        yield client


def _run_batch(args: argparse.Namespace, inputs: Any, output: str, config: RunConfig) -> int:
    from daskmic.run.progress import print_row

    summary = daskmic.run_batch(  # starts a cluster only for what is left to do
        inputs,
        output,
        config,
        limit=args.limit,
        overwrite=args.overwrite,
        on_row=print_row,
        report=not args.no_report,
        **_cluster_kwargs(args),
    )
    return _report(summary, config)


def _dispatch(args: argparse.Namespace) -> int:
    from daskmic.run.progress import print_row

    if args.command in ("preprocess", "tilt"):
        config = _config(args, preprocess=args.command == "preprocess", tilt=args.command == "tilt")
        return _run_batch(args, args.inputs, args.output, config)
    if args.command == "run":
        inputs, output, config = _config_file(args)
        return _run_batch(args, args.inputs or inputs, args.output or output, config)
    if args.command == "report":
        if args.serve is None:
            _write_report(args.output, args.storage_options)
        else:
            from daskmic.report.serve import serve

            serve(
                args.output,
                args.serve,
                announce=lambda line: print(line, flush=True),
                storage_options=args.storage_options,
            )
        return EXIT_OK
    if args.command == "select":
        counts = daskmic.select(
            args.output,
            mean_threshold=args.mean_threshold,
            std_threshold=args.std_threshold,
            max_tilt_deg=args.max_tilt_deg,
            storage_options=args.storage_options,
        )
        print(", ".join(f"{n} {status}" for status, n in counts.items()))
        return EXIT_OK
    if args.command == "watch":
        if args.config:
            config = _config_file(args)[2]
        else:
            steps = preprocess_params(args).enabled()
            config = _config(args, preprocess=bool(steps), tilt=args.tilt)
        with _cluster(args) as client:
            summary = daskmic.watch(
                args.folder,
                args.output,
                config,
                client=client,
                pattern=args.pattern,
                batch_size=args.batch_size,
                settle_seconds=args.settle,
                poll_seconds=args.poll,
                close_marker=args.close_marker,
                idle_timeout=args.idle_timeout,
                overwrite=args.overwrite,
                on_row=print_row,
                report=not args.no_report,
            )
        return _report(summary, config)
    if args.command == "demo":
        with _cluster(args) as client:
            summary = daskmic.demo(
                args.output, micrographs=args.micrographs, on_row=print_row, client=client
            )
        _write_report(str(summary.out_dir))
        from daskmic.run.demo import DEMO_CONFIG, truth_note

        code = _report(summary, DEMO_CONFIG)
        print(truth_note(args.output))
        return code
    raise UsageError(f"unknown command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``daskmic`` command line; return its exit code (see ``EPILOG``).

    Only a :class:`~daskmic.errors.UsageError`, which the checks made before any work raise,
    gives :data:`EXIT_USAGE`; any other exception is an internal error, printed with its
    traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"daskmic {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print(
            f"daskmic {args.command}: internal error (exit {EXIT_INTERNAL}); the outputs "
            "written so far are kept and a rerun resumes. Please report the traceback above.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def leave(code: int) -> NoReturn:
    """End the process with ``code`` now, without the interpreter's teardown.

    Everything is written and closed when :func:`main` returns; what is left is the teardown of
    every imported module (pandas, xarray, zarr, dask: 0.05-0.1 s of every command on an idle
    machine, and its garbage collections 0.5 s more when they ran). The printed text is flushed
    and the rest left to the operating system.
    """
    gc.freeze()  # should anything below still collect
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def entry() -> NoReturn:
    """The ``daskmic`` console script: :func:`main`, then :func:`leave` with its exit code."""
    leave(main())


if __name__ == "__main__":
    entry()
