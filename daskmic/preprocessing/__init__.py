"""Preprocessing: the protocol's options, the ordered pipeline of enabled ops, the lazy face.

:mod:`.params` (:class:`~daskmic.preprocessing.params.PreprocessParams`, its defaults and
checks, and the geometry a shape goes through), :mod:`.pipeline` (the kernels for one input, in
the protocol's order, adjacent Fourier steps fused), :mod:`.lazy` (:func:`daskmic.preprocess`,
the same kernels lifted onto a dask stack). Nothing is imported here.
"""
