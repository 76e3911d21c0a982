"""daskmic's benchmark suite: ratios against the floor and against its peers, in one run.

Run from the repository root::

    .venv/bin/python -m benchmarks [--smoke] [--only NAME] [--results PATH] [--workdir DIR]

Benchmarks (``--only`` takes these names): ``preprocess`` (CLI vs the floor and the
Xmipp-style chain), ``tilt`` (daskmic default and compat vs the xmippLib path), ``throughput``
(embedded local cluster vs a process pool, 1 vs 2 workers, total time vs dataset size),
``memory`` (peak resident memory above idle per worker thread), ``scaling`` (time per
micrograph vs N log N), ``live`` (the live page's update) and ``overhead`` (what a set costs
beside its compute as it grows: rebuilds, resume, driver memory; the fixed start-up). The full
run writes its table to ``benchmarks/RESULTS.md``.
"""
