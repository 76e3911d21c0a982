"""Scipion plugin for daskmic: Xmipp's *Preprocess Micrographs* and *Tilt Analysis*, on dask.

The protocols call the ``daskmic`` command from daskmic's own environment (scipion-em pins
packages daskmic cannot share), named by the plugin variable ``DASKMIC_BIN``: set it in
Scipion's configuration (``scipion.conf``) or the environment; by default ``daskmic`` on the
PATH.
"""

import os
import shutil
import subprocess

import pwem
import pyworkflow.utils as pwutils

__version__ = "0.1.0"
_logo = ""
_references = []

DASKMIC_BIN = "DASKMIC_BIN"
DEFAULT_DASKMIC_BIN = "daskmic"


class Plugin(pwem.Plugin):
    """Where the daskmic executable is."""

    _url = "https://github.com/daskmic/daskmic"

    @classmethod
    def _defineVariables(cls):
        cls._defineVar(
            DASKMIC_BIN,
            DEFAULT_DASKMIC_BIN,
            description="The daskmic executable, from daskmic's own environment",
        )

    @classmethod
    def getEnviron(cls):
        return pwutils.Environ(os.environ)

    @classmethod
    def defineBinaries(cls, env):
        """daskmic is installed on its own (``pip install daskmic``), not by Scipion."""

    @classmethod
    def getDaskmic(cls):
        """The daskmic executable the protocols run."""
        return os.environ.get(DASKMIC_BIN) or cls.getVar(DASKMIC_BIN) or DEFAULT_DASKMIC_BIN

    @classmethod
    def validateDaskmic(cls):
        """Errors (a list of messages) if ``DASKMIC_BIN`` is not a usable daskmic."""
        program = cls.getDaskmic()
        found = shutil.which(program)
        if found is None:
            return [
                f"{DASKMIC_BIN}={program}: no such executable. Install daskmic in its own "
                f"environment (pip install daskmic) and set {DASKMIC_BIN} to its daskmic "
                "command (e.g. /opt/daskmic/bin/daskmic) in scipion.conf."
            ]
        try:
            result = subprocess.run(
                [found, "watch", "--help"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return [f"{DASKMIC_BIN}={program} cannot be run: {error}"]
        if result.returncode != 0 or "Scipion set" not in result.stdout:
            return [
                f"{DASKMIC_BIN}={program} is not a daskmic executable that follows Scipion "
                f"sets (`{program} watch --help` does not describe them); point "
                f"{DASKMIC_BIN} at daskmic's command."
            ]
        return []
