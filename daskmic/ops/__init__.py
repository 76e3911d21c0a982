"""Operations: one pure numpy kernel per operation, lifted onto dask by :mod:`.kernel`.

Modules: :mod:`.crop` (borders), :mod:`.intensity` (log, invert, normalize),
:mod:`.bad_pixels`, :mod:`.fourier` (downsample, Gaussian, high/low pass, fused into one pass;
masks in :mod:`.fourier_masks`), :mod:`.denoise` (total variation; its solver
:mod:`.spg`), :mod:`.stats` (float64 reductions). Each factory returns a
:class:`daskmic.ops.kernel.Kernel`.
"""
