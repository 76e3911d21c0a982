"""Running: the per-micrograph unit, the driver, the manifest, publishing, streaming.

:mod:`.config` (what one run does, and how a stream follows a folder: their defaults and
checks), :mod:`.sources` (inputs -> sources, and the checks before any work), :mod:`.unit`
(``process_micrograph``: one micrograph in, its outputs and its row out), :mod:`.driver`
(``run_batch``: sources -> units on a cluster), :mod:`.feeder` (keeps the cluster busy and
publishes between batches), :mod:`.layout` (the only module that knows output paths; no output
on an input), :mod:`.manifest` (the done-records, the single source of truth),
:mod:`.publish` (tables and zarr rebuilt from the manifest; ``select``), :mod:`.optics_groups`
(the STAR tables' optics groups), :mod:`.write` (``write``: from the lazy face to the same
outputs), :mod:`.stream` (``watch``: :mod:`.arrivals` for a folder, :mod:`.set_stream` for a Scipion
set), :mod:`.publish_sets` (the Scipion sets), :mod:`.progress` (per-row lines), :mod:`.demo`.
Nothing is imported here.
"""
