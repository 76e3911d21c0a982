"""Run the plugin's protocols headless in a fresh Scipion project (pwem environment's python).

    python run_protocols.py SPEC.json RESULT.json

SPEC: {"project": name, "files": [micrograph paths], "sampling": A, "voltage", "cs", "q0",
"preprocess": {form values}, "tilt": {form values}, "stream": bool, "steps": [[files]...]}.
Without ``stream`` the micrographs are imported first and both protocols run on the closed set.
With ``stream`` the import watches an empty folder (``dataStreaming``), the daskmic protocols
start on its open output, and ``steps`` are copied into the folder one group at a time; the
import closes its set once nothing new has come for a few seconds. RESULT holds every output
set as ``sets.py dump`` gives it and the project folder.
"""

import json
import os
import shutil
import sys
import time

from pyworkflow.tests import BaseTest, setupTestProject
from pwem.protocols import ProtImportMicrographs

from daskmic_scipion.protocols import DaskmicProtPreprocessMicrographs, DaskmicProtTiltAnalysis

from sets import dump


class Run(BaseTest):
    """A BaseTest used as a driver (its project helpers), not as a unittest case."""

    @classmethod
    def updateProtocol(cls, protocol):
        """``protocol`` brought up to date from its run's database."""
        cls.proj._updateProtocol(protocol)
        return protocol


def _import(spec, folder, streaming):
    options = dict(
        filesPath=folder,
        filesPattern="*.mrc",
        samplingRateMode=0,
        samplingRate=spec["sampling"],
        voltage=spec["voltage"],
        sphericalAberration=spec["cs"],
        amplitudeContrast=spec["q0"],
        magnification=50000,
    )
    if streaming:
        options.update(dataStreaming=True, fileTimeout=1, timeout=12)
    return Run.newProtocol(ProtImportMicrographs, **options)


def _wait_for(protocol, output):
    while True:
        protocol = Run.updateProtocol(protocol)
        if protocol.hasAttribute(output) or protocol.isFailed():
            return protocol
        time.sleep(1)


def _wait_done(protocol):
    while True:
        protocol = Run.updateProtocol(protocol)
        if not protocol.isActive():
            if not protocol.isFinished():
                Run.printLastLogLines(protocol)
                raise RuntimeError("%s did not finish" % protocol.getRunName())
            return protocol
        time.sleep(1)


def main(spec_path, result_path):
    result_path = os.path.abspath(result_path)
    with open(spec_path) as handle:
        spec = json.load(handle)
    Run.__name__ = spec["project"]
    setupTestProject(Run)
    folder = os.path.abspath(os.path.join(Run.proj.path, "..", spec["project"] + "_raw"))
    os.makedirs(folder, exist_ok=True)
    stream = spec.get("stream", False)
    steps = spec["steps"] if stream else [spec["files"]]
    if not stream:
        for name in spec["files"]:
            shutil.copy(name, folder)
    importer = _import(spec, folder, stream)
    if stream:
        shutil.copy(steps[0][0], folder)
        Run.launchProtocol(importer, wait=False)
        importer = _wait_for(importer, "outputMicrographs")
    else:
        Run.launchProtocol(importer)
    protocols = {}
    for key, cls in (("preprocess", DaskmicProtPreprocessMicrographs),
                     ("tilt", DaskmicProtTiltAnalysis)):
        if key in spec:
            protocol = Run.newProtocol(cls, **spec[key])
            protocol.inputMicrographs.set(importer)
            protocol.inputMicrographs.setExtended("outputMicrographs")
            Run.launchProtocol(protocol, wait=not stream)
            protocols[key] = protocol
    if stream:
        states = []
        for group in [steps[0][1:]] + steps[1:]:
            for name in group:
                shutil.copy(name, folder)
            time.sleep(4)
            states.append(_open_states(protocols))
        importer = _wait_done(importer)
        protocols = {key: _wait_done(p) for key, p in protocols.items()}
    else:
        states = []
    result = {"project": Run.proj.path, "states_while_streaming": states, "outputs": {}}
    os.chdir(Run.proj.path)
    for key, protocol in protocols.items():
        protocol = Run.updateProtocol(protocol)
        for name in ("outputMicrographs", "discardedMicrographs"):
            if protocol.hasAttribute(name):
                result["outputs"]["%s.%s" % (key, name)] = dump(getattr(protocol, name).getFileName())
        result["outputs"]["%s.extra" % key] = os.path.abspath(protocol._getExtraPath())
    result["input"] = dump(Run.updateProtocol(importer).outputMicrographs.getFileName())
    with open(result_path, "w") as handle:
        json.dump(result, handle)


def _open_states(protocols):
    """Per protocol output, its stream state now (None when not defined yet)."""
    states = {}
    for key, protocol in protocols.items():
        protocol = Run.updateProtocol(protocol)
        for name in ("outputMicrographs", "discardedMicrographs"):
            output = getattr(protocol, name, None) if protocol.hasAttribute(name) else None
            states["%s.%s" % (key, name)] = None if output is None else output.getStreamState()
    return states


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
