"""The plugin's protocols, as Scipion finds them (``<plugin>.protocols``)."""

from .protocol_preprocess import DaskmicProtPreprocessMicrographs
from .protocol_tilt import DaskmicProtTiltAnalysis

__all__ = ["DaskmicProtPreprocessMicrographs", "DaskmicProtTiltAnalysis"]
