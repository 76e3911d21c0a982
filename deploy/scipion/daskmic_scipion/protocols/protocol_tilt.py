"""daskmic's Tilt Analysis, with the form of Xmipp's ``XmippProtTiltAnalysis``."""

from pwem.objects import SetOfMicrographs
from pyworkflow.protocol import params

from .base import DaskmicProtocol


class DaskmicProtTiltAnalysis(DaskmicProtocol):
    """Split micrographs by the correlation of the PSDs of their corners (Xmipp's screen), and
    optionally by the tilt angle daskmic estimates from the local defocus. Outputs:
    ``outputMicrographs`` (accepted) and ``discardedMicrographs``, each micrograph with
    ``_tilt_mean_corr``, ``_tilt_std_corr``, ``_tilt_min_corr``, ``_tilt_max_corr`` and
    ``_tilt_psds_image`` (and ``_tilt_angle_deg``, ... with the angle estimate).
    """

    _label = "tilt analysis (daskmic)"
    OUTPUTS = {"outputMicrographs": "accepted.sqlite", "discardedMicrographs": "discarded.sqlite"}
    _possibleOutputs = {
        "outputMicrographs": SetOfMicrographs,
        "discardedMicrographs": SetOfMicrographs,
    }

    def _defineParams(self, form):
        self._defineInput(form)
        form.addParam("autoWindow", params.BooleanParam, default=True,
                      label="Estimate automatically the window size?",
                      help="Choose the window size from the micrograph size.")
        form.addParam("window_size", params.IntParam, default=1024, condition="not autoWindow",
                      validators=[params.GE(256, "Error must be greater than 256")],
                      label="Window size",
                      help="The micrograph is divided into windows of this size; the PSD and "
                      "its correlations are computed in every corner window.")
        form.addParam("objective_resolution", params.FloatParam, default=3,
                      validators=[params.GT(0, "Error must be Positive")],
                      label="Objective resolution",
                      help="Resolution (Å) up to which the PSDs are compared.")
        form.addParam("meanCorr_threshold", params.FloatParam, default=0.5,
                      validators=[params.Range(0, 1)],
                      label="Mean correlation threshold",
                      help="Micrographs with a mean correlation above it (and a std below the "
                      "std threshold) are accepted.")
        form.addParam("stdCorr_threshold", params.FloatParam, default=0.1,
                      validators=[params.GT(0, "Error must be greater than 0")],
                      label="STD correlation threshold",
                      help="Micrographs with a correlation std below it (and a mean above the "
                      "mean threshold) are accepted.")
        form.addSection(label="Tilt angle (daskmic)")
        form.addParam("estimateAngle", params.BooleanParam, default=False,
                      label="Estimate the tilt angle?",
                      help="Also estimate the specimen tilt angle and axis from the local "
                      "defocus (needs the acquisition's voltage, Cs, amplitude contrast).")
        form.addParam("maxTilt", params.FloatParam, default=0, condition="estimateAngle",
                      label="Max. tilt (deg; 0 = no limit)",
                      help="Also discard micrographs whose estimated tilt is above it.")
        self._defineWhere(form)

    def _stepArgs(self):
        window = "auto" if self.autoWindow else str(self.window_size.get())
        args = [
            "--tilt",
            "--window-size", window,
            "--resolution", str(self.objective_resolution.get()),
            "--mean-threshold", str(self.meanCorr_threshold.get()),
            "--std-threshold", str(self.stdCorr_threshold.get()),
        ]
        if self.estimateAngle:
            args += ["--angle"]
            if self.maxTilt.get():
                args += ["--max-tilt-deg", str(self.maxTilt.get())]
        return args
