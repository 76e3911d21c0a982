"""Running: the per-micrograph unit, the driver, the manifest, publishing, streaming.

:mod:`.config` (what one run does), :mod:`.unit` (``process_micrograph``: one micrograph in,
its outputs and its row out), :mod:`.driver` (``run_batch``: sources -> units on a cluster),
:mod:`.feeder` (keeps the cluster busy and publishes between batches), :mod:`.manifest` (the
done-records, the single source of truth), :mod:`.publish` (tables and zarr rebuilt from the
manifest; ``select``), :mod:`.write` (``write``: from the lazy face to the same outputs),
:mod:`.stream` (``watch``), :mod:`.progress` (per-row lines), :mod:`.demo`. Nothing is imported
here.
"""
