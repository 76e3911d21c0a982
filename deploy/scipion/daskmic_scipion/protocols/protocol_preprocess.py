"""daskmic's Preprocess Micrographs, with the form of Xmipp's ``XmippProtPreprocessMicrographs``."""

from pwem.objects import SetOfMicrographs
from pwem.protocols import ProtPreprocessMicrographs
from pyworkflow.protocol import params

from .base import DaskmicProtocol

INT, FLOAT = params.IntParam, params.FloatParam
RAISED_HELP = "Transition bandwidth, in normalized frequencies."

OPERATIONS = (
    ("doCrop", "Crop borders?", "Crop a given amount of pixels from each border.", "--crop",
     [("cropPixels", INT, 10, "Pixels to crop", "Amount of pixels to crop from each border.")]),
    ("doLog", "Take logarithm?",
     "Depending on your acquisition system you may need to take the logarithm of the pixel "
     "values: a - b*ln(x + c).", "--log",
     [("logA", FLOAT, 4.431, "a", "a in a - b*ln(x + c)"),
      ("logB", FLOAT, 0.402, "b", "b in a - b*ln(x + c)"),
      ("logC", FLOAT, 336.6, "c", "c in a - b*ln(x + c)")]),
    ("doRemoveBadPix", "Remove bad pixels?",
     "Values outside mean ± K·stddev are substituted by the local median.", "--bad-pixels",
     [("mulStddev", INT, 5, "Multiple of Stddev", "Multiple of Stddev (K).")]),
    ("doInvert", "Invert contrast?", "Multiply the micrographs by -1.", "--invert", []),
    ("doDownsample", "Downsample micrographs?",
     "Downsample micrographs by a given factor (Fourier cropping).", "--downsample",
     [("downFactor", FLOAT, 2.0, "Downsampling factor",
       "Non-integer downsample factors are possible. Must be larger than 1.")]),
    ("doDenoise", "Denoising", "Total-variation denoising of the micrographs.", "--denoise",
     [("maxIteration", INT, 50, "Max. number of iterations",
       "Max. number of iterations. Higher number = better output but slower.")]),
    ("doSmooth", "Gaussian filter", "Apply a Gaussian filter in real space.", "--gaussian",
     [("sigmaConvolution", FLOAT, 2.0, "Gaussian sigma",
       "Real-space standard deviation in pixels; the larger, the smoother.")]),
    ("doHighPass", "Highpass filter", "Remove low frequencies (e.g. background gradients).",
     "--highpass",
     [("highCutoff", FLOAT, 0.002, "Cutoff frequency",
       "In normalized frequencies (<0.5); 1/500 = 0.002 removes patterns larger than 500 px."),
      ("highRaised", FLOAT, 0.001, "Transition bandwidth", RAISED_HELP)]),
    ("doLowPass", "Lowpass filter", "Remove high frequencies.", "--lowpass",
     [("lowCutoff", FLOAT, 0.4, "Cutoff frequency",
       "In normalized frequencies (<0.5): pixel size / resolution, e.g. 0.5 Å / 4 Å = 0.125."),
      ("lowRaised", FLOAT, 0.001, "Transition bandwidth", RAISED_HELP)]),
    ("doNormalize", "Normalize micrograph?",
     "Normalize micrographs to have zero mean and unit standard deviation.", "--normalize", []),
)
"""Xmipp's operations in its order: flag, label, help, daskmic option, and the values the
option takes (name, class, default, label, help), as in Xmipp's form."""

VALIDATORS = {"downFactor": [params.GT(1, "Error: must be greater than 1")]}


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
        for flag, label, help_text, _, values in OPERATIONS:
            form.addParam(flag, params.BooleanParam, default=False, label=label, help=help_text)
            for name, kind, default, value_label, value_help in values:
                form.addParam(name, kind, default=default, condition=flag, label=value_label,
                              help=value_help, validators=VALIDATORS.get(name, []))
        self._defineWhere(form)

    def _stepArgs(self):
        args = []
        for flag, _, _, option, values in OPERATIONS:
            if getattr(self, flag).get():
                args += [option] + [str(getattr(self, value[0]).get()) for value in values]
        return args

    def _validate(self):
        errors = DaskmicProtocol._validate(self)
        if not any(getattr(self, operation[0]).get() for operation in OPERATIONS):
            errors.append("Select at least one operation (crop, log, ..., normalize).")
        return errors
