"""Run the plugin's protocols headless in a fresh Scipion project (pwem environment's python).

    python run_protocols.py SPEC.json RESULT.json

SPEC: {"project": name, "files": [micrograph paths], "sampling": A, "voltage", "cs", "q0",
"preprocess": {form values}, "tilt": {form values}, "stream": bool, "steps": [[files]...]}.
Without ``stream`` the micrographs are imported first and both protocols run on the closed set.
With ``stream`` the import watches a folder (``dataStreaming``) holding ``steps[0]``, the
daskmic protocols start on its open output, and each further group of ``steps`` is copied in
once a daskmic protocol has an output (its name, size and stream state then are recorded in
``first_outputs``); once all are imported, the import is stopped (its ``STOP STREAMING``
action), which closes its set.
RESULT holds every output set as ``sets.py dump`` gives it and the project folder.
"""

import json
import os
import shutil
import sys
import time

from daskmic_scipion.protocols import DaskmicProtPreprocessMicrographs, DaskmicProtTiltAnalysis
from pwem.protocols import ProtImportMicrographs
from pyworkflow.tests import BaseTest, setupTestProject
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
        options.update(dataStreaming=True, fileTimeout=1, timeout="1h")
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
                raise RuntimeError(f"{protocol.getRunName()} did not finish")
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
        for name in steps[0]:
            shutil.copy(name, folder)
        Run.proj.launchProtocol(importer, wait=False)
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
            if stream:
                Run.proj.launchProtocol(protocol, wait=False)
            else:
                Run.launchProtocol(protocol)
            protocols[key] = protocol
    states = []
    if stream:
        for group in steps[1:]:
            states.append(_first_output(protocols))
            for name in group:
                shutil.copy(name, folder)
        _stop_import(importer, sum(len(group) for group in steps))
        importer = _wait_done(importer)
        protocols = {key: _wait_done(p) for key, p in protocols.items()}
    result = {"project": Run.proj.path, "first_outputs": states, "outputs": {}}
    os.chdir(Run.proj.path)
    for key, protocol in protocols.items():
        protocol = Run.updateProtocol(protocol)
        for name in ("outputMicrographs", "discardedMicrographs"):
            if protocol.hasAttribute(name):
                output = getattr(protocol, name).getFileName()
                result["outputs"][f"{key}.{name}"] = dump(output)
        result["outputs"][f"{key}.extra"] = os.path.abspath(protocol._getExtraPath())
    result["input"] = dump(Run.updateProtocol(importer).outputMicrographs.getFileName())
    with open(result_path, "w") as handle:
        json.dump(result, handle)


def _stop_import(importer, count, timeout=120):
    """Once the import holds ``count`` micrographs, end its streaming as its GUI action does."""
    start = time.time()
    while time.time() - start < timeout:
        importer = Run.updateProtocol(importer)
        if importer.outputMicrographs.getSize() >= count:
            break
        time.sleep(0.5)
    with open(importer._getStopStreamingFilename(), "w"):
        pass


def _first_output(protocols, timeout=300):
    """Wait until a protocol has an output; its name, size and stream state then."""
    start = time.time()
    while time.time() - start < timeout:
        for key, protocol in protocols.items():
            protocol = Run.updateProtocol(protocol)
            for name in ("outputMicrographs", "discardedMicrographs"):
                if protocol.hasAttribute(name):
                    output = getattr(protocol, name)
                    return {
                        "output": f"{key}.{name}",
                        "size": output.getSize(),
                        "stream_state": output.getStreamState(),
                    }
        time.sleep(0.5)
    return None


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
