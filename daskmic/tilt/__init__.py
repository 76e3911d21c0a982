"""Tilt analysis: corner windows -> PSDs -> ten correlations -> accepted/discarded/failed.

``analysis.tilt_analysis`` screens a lazy micrograph stack (the notebook face);
``screen.corner_regions`` and ``screen.screen_windows`` screen one micrograph from its four
corner windows (the production face, ``daskmic.run.unit``); ``select.split`` re-applies thresholds
to recorded statistics. Nothing is imported here, so ``import daskmic.tilt`` stays light.
"""
