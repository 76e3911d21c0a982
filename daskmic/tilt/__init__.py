"""Tilt analysis: corner windows -> PSDs -> ten correlations -> accepted/discarded/failed.

``analysis.tilt_analysis`` screens a lazy micrograph stack (the notebook face);
``screen.corner_regions`` and ``screen.screen_windows`` screen one micrograph from its four
corner windows (the production face, :mod:`daskmic.run.unit`); ``decision.decide`` is the one
accept/discard rule, which ``select.split`` re-applies to recorded statistics. The tilt angle
(``angle``, ``angle_*``, ``defocus_map``) uses the CTF and its optics (``ctf``, ``optics``).
Nothing is imported here, so ``import daskmic.tilt`` stays light.
"""
