"""Where the graph runs: a ``distributed.Client`` for the user's choice of cluster.

:mod:`.client` (``connect``: embedded ``LocalCluster``, an address, SLURM/PBS or Kubernetes),
:mod:`.defaults` (daskmic's defaults in ``dask.config``, from ``daskmic.yaml``),
:mod:`.jobqueue` (dask-jobqueue), :mod:`.kubernetes` (dask-kubernetes), :mod:`.progress` (the
progress bar over futures), :mod:`.inprocess` (a small set's threads, no cluster) and
:mod:`.threads` (how many tasks the workers take at once). Nothing is imported here.
"""
