"""daskmic's Preprocess Micrographs, with the form of Xmipp's ``XmippProtPreprocessMicrographs``."""

from pwem.objects import SetOfMicrographs
from pwem.protocols import ProtPreprocessMicrographs
from pyworkflow.protocol import params

from .base import DaskmicProtocol

STEPS = (
    "doCrop",
    "doLog",
    "doRemoveBadPix",
    "doInvert",
    "doDownsample",
    "doDenoise",
    "doSmooth",
    "doHighPass",
    "doLowPass",
    "doNormalize",
)


class DaskmicProtPreprocessMicrographs(DaskmicProtocol, ProtPreprocessMicrographs):
    """Crop borders, take logarithm, remove bad pixels, invert contrast, downsample, denoise,
    Gaussian, high-pass and low-pass filter, normalize: Xmipp's operations in Xmipp's order,
    run by daskmic on a dask cluster. Streaming: while the input set is open, new micrographs
    are processed and appended to the open output.
    """

    _label = "preprocess micrographs (daskmic)"
    OUTPUTS = {"outputMicrographs": "micrographs.sqlite"}
    _possibleOutputs = {"outputMicrographs": SetOfMicrographs}

    def _defineParams(self, form):
        self._defineInput(form)
        form.addParam("doCrop", params.BooleanParam, default=False, label="Crop borders?",
                      help="Crop a given amount of pixels from each border.")
        form.addParam("cropPixels", params.IntParam, default=10, condition="doCrop",
                      label="Pixels to crop",
                      help="Amount of pixels you want to crop from borders.")
        form.addParam("doLog", params.BooleanParam, default=False, label="Take logarithm?",
                      help="Depending on your acquisition system you may need to take the "
                      "logarithm of the pixel values: a - b*ln(x + c).")
        line = form.addLine("Log", condition="doLog", help="a - b*ln(x + c)")
        line.addParam("logA", params.FloatParam, default=4.431, label="a")
        line.addParam("logB", params.FloatParam, default=0.402, label="b")
        line.addParam("logC", params.FloatParam, default=336.6, label="c")
        form.addParam("doRemoveBadPix", params.BooleanParam, default=False,
                      label="Remove bad pixels?",
                      help="Values outside mean ± K·stddev are substituted by the local median.")
        form.addParam("mulStddev", params.IntParam, default=5, condition="doRemoveBadPix",
                      label="Multiple of Stddev", help="Multiple of Stddev (K).")
        form.addParam("doInvert", params.BooleanParam, default=False, label="Invert contrast?",
                      help="Multiply the micrographs by -1.")
        form.addParam("doDownsample", params.BooleanParam, default=False,
                      label="Downsample micrographs?",
                      help="Downsample micrographs by a given factor (Fourier cropping).")
        form.addParam("downFactor", params.FloatParam, default=2.0, condition="doDownsample",
                      validators=[params.GT(1, "Error: must be greater than 1")],
                      label="Downsampling factor",
                      help="Non-integer downsample factors are possible. Must be larger than 1.")
        form.addParam("doDenoise", params.BooleanParam, default=False, label="Denoising",
                      help="Total-variation denoising of the micrographs.")
        form.addParam("maxIteration", params.IntParam, default=50, condition="doDenoise",
                      label="Max. number of iterations",
                      help="Max. number of iterations. Higher number = better output but slower.")
        form.addParam("doSmooth", params.BooleanParam, default=False, label="Gaussian filter",
                      help="Apply a Gaussian filter in real space.")
        form.addParam("sigmaConvolution", params.FloatParam, default=2, condition="doSmooth",
                      label="Gaussian sigma",
                      help="The larger this value, the more the effect will be noticed.")
        form.addParam("doHighPass", params.BooleanParam, default=False, label="Highpass filter",
                      help="Remove low frequencies (e.g. background gradients).")
        form.addParam("highCutoff", params.FloatParam, default=0.002, condition="doHighPass",
                      label="Cutoff frequency",
                      help="In normalized frequencies (<0.5); 1/500 = 0.002 removes patterns "
                      "larger than 500 pixels.")
        form.addParam("highRaised", params.FloatParam, default=0.001, condition="doHighPass",
                      label="Transition bandwidth",
                      help="Transition bandwidth, in normalized frequencies.")
        form.addParam("doLowPass", params.BooleanParam, default=False, label="Lowpass filter",
                      help="Remove high frequencies.")
        form.addParam("lowCutoff", params.FloatParam, default=0.4, condition="doLowPass",
                      label="Cutoff frequency",
                      help="In normalized frequencies (<0.5): pixel size / resolution, e.g. "
                      "0.5 Å / 4 Å = 0.125.")
        form.addParam("lowRaised", params.FloatParam, default=0.001, condition="doLowPass",
                      label="Transition bandwidth",
                      help="Transition bandwidth, in normalized frequencies.")
        form.addParam("doNormalize", params.BooleanParam, default=False,
                      label="Normalize micrograph?",
                      help="Normalize micrographs to have zero mean and unit standard deviation.")
        self._defineWhere(form)

    def _stepArgs(self):
        args = []
        if self.doCrop:
            args += ["--crop", str(self.cropPixels.get())]
        if self.doLog:
            args += ["--log"] + [str(getattr(self, n).get()) for n in ("logA", "logB", "logC")]
        if self.doRemoveBadPix:
            args += ["--bad-pixels", str(self.mulStddev.get())]
        if self.doInvert:
            args += ["--invert"]
        if self.doDownsample:
            args += ["--downsample", str(self.downFactor.get())]
        if self.doDenoise:
            args += ["--denoise", str(self.maxIteration.get())]
        if self.doSmooth:
            args += ["--gaussian", str(self.sigmaConvolution.get())]
        if self.doHighPass:
            args += ["--highpass", str(self.highCutoff.get()), str(self.highRaised.get())]
        if self.doLowPass:
            args += ["--lowpass", str(self.lowCutoff.get()), str(self.lowRaised.get())]
        if self.doNormalize:
            args += ["--normalize"]
        return args

    def _validate(self):
        errors = DaskmicProtocol._validate(self)
        if not any(getattr(self, step).get() for step in STEPS):
            errors.append("Select at least one operation (crop, log, ..., normalize).")
        return errors
