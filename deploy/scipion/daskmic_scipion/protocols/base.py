"""What both protocols share: run ``daskmic watch`` on the input set, stream its sets out.

One step starts ``daskmic watch INPUT.sqlite -o extra/`` (daskmic follows the input set while
it is open and stops once it is closed and everything is done) and, while it runs, appends the
micrographs that appear in daskmic's output sets to the protocol's outputs, left open; when
daskmic ends, the outputs are closed. Micrographs keep their input ids, as in the Xmipp
protocols; micrographs daskmic could not process are in no output (see ``extra/daskmic.log``
and ``extra/micrographs.csv``).
"""

import os
import subprocess
import time

from pwem.objects import SetOfMicrographs
from pwem.protocols import ProtMicrographs
from pyworkflow.object import Set
from pyworkflow.protocol import params

from .. import Plugin

POLL_SECONDS = 2.0
"""How often the outputs are brought up to date while daskmic runs."""

CLUSTERS = ["local", "slurm", "scheduler address"]


class DaskmicProtocol(ProtMicrographs):
    """Base of the daskmic protocols (not listed in the GUI itself)."""

    _label = None
    OUTPUTS = {}  # output name -> daskmic's set file in extra/

    # -------------------------- form ----------------------------------------
    def _defineInput(self, form):
        form.addSection(label="Input")
        form.addParam(
            "inputMicrographs",
            params.PointerParam,
            pointerClass="SetOfMicrographs",
            important=True,
            label="Input micrographs",
            help="Select the SetOfMicrographs to be processed (open sets are followed).",
        )

    def _defineWhere(self, form):
        form.addSection(label="Where to run (daskmic)")
        form.addParam(
            "daskmicCluster",
            params.EnumParam,
            choices=CLUSTERS,
            default=0,
            label="Where to run",
            help="local: a dask cluster on this machine; slurm: workers as Slurm jobs "
            "(daskmic's jobqueue settings); scheduler address: a running dask scheduler.",
        )
        form.addParam(
            "schedulerAddress",
            params.StringParam,
            default="",
            condition="daskmicCluster == 2",
            label="Scheduler address",
            help="e.g. tcp://headnode:8786",
        )
        form.addParam(
            "daskmicWorkers",
            params.IntParam,
            default=0,
            label="Workers (0 = daskmic's default)",
            help="Number of dask workers (local) or jobs (Slurm).",
        )

    # -------------------------- steps ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep("runDaskmicStep")

    def runDaskmicStep(self):
        command = [Plugin.getDaskmic()] + self._commandArgs()
        log_path = self._getExtraPath("daskmic.log")
        self.info(f"Running: {' '.join(command)}")
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            while process.poll() is None:
                time.sleep(POLL_SECONDS)
                self._syncOutputs(Set.STREAM_OPEN)
        if process.returncode not in (0, 1):  # 1: some micrographs failed, the rest are done
            raise RuntimeError(f"daskmic exited with code {process.returncode}; see {log_path}")
        self._syncOutputs(Set.STREAM_CLOSED)

    def _commandArgs(self):
        """``watch INPUT -o extra/`` with the form's options and where to run."""
        args = ["watch", self.inputMicrographs.get().getFileName(), "-o", self._getExtraPath()]
        args += self._stepArgs()
        cluster = CLUSTERS[self.daskmicCluster.get()]
        if cluster == "scheduler address":
            cluster = self.schedulerAddress.get()
        args += ["--cluster", cluster, "--no-dashboard", "--no-report", "--poll", "1"]
        if self.daskmicWorkers.get():
            args += ["--workers", str(self.daskmicWorkers.get())]
        return args

    def _stepArgs(self):
        raise NotImplementedError

    # -------------------------- outputs -------------------------------------
    def _syncOutputs(self, state):
        """Append what daskmic's sets hold and the outputs do not; set their stream state."""
        for name, file_name in self.OUTPUTS.items():
            produced_path = self._getExtraPath(file_name)
            if not os.path.exists(produced_path):
                continue
            produced = SetOfMicrographs(filename=produced_path)
            produced.loadAllProperties()
            sampling = produced.getSamplingRate()
            items = [item.clone() for item in produced]
            produced.close()
            if not items and not self.hasAttribute(name):
                continue  # as Xmipp: no output until it holds a micrograph
            output = self._outputSet(name, sampling)
            known = output.getIdSet() if output.getSize() else set()
            for item in items:
                if item.getObjId() not in known:
                    output.append(item)
            self._updateOutputSet(name, output, state)
            if not self._hasRelation(name):
                self._defineSourceRelation(self.inputMicrographs, getattr(self, name))

    def _hasRelation(self, name):
        flag = "_related_" + name
        done = getattr(self, flag, False)
        setattr(self, flag, True)
        return done

    def _outputSet(self, name, sampling):
        path = self._getPath(name + ".sqlite")
        if os.path.exists(path):
            output = SetOfMicrographs(filename=path)
            output.loadAllProperties()
            output.enableAppend()
            return output
        output = SetOfMicrographs(filename=path)
        output.copyInfo(self.inputMicrographs.get())
        output.setSamplingRate(sampling)
        output.setStreamState(Set.STREAM_OPEN)
        return output

    # -------------------------- info ----------------------------------------
    def _validate(self):
        errors = Plugin.validateDaskmic()
        if CLUSTERS[self.daskmicCluster.get()] == "scheduler address" and not (
            self.schedulerAddress.get() or ""
        ).strip():
            errors.append("Scheduler address: give the dask scheduler's address (tcp://...).")
        return errors

    def _summary(self):
        lines = []
        for name in self.OUTPUTS:
            if self.hasAttribute(name):
                lines.append(f"{name}: {getattr(self, name).getSize()} micrographs")
        return lines or ["No output yet."]
