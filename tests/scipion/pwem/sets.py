"""Make, extend and dump Scipion sets with pwem itself (run by the pwem environment's python).

    python sets.py make SET.sqlite SPEC.json   # write (or, with "append", extend) a set
    python sets.py dump SET.sqlite...          # print each set as pwem reads it, as JSON

SPEC: {"files": [...], "sampling": A, "voltage": kV, "cs": mm, "q0": fraction,
"magnification": x, "disabled": [indices of files], "open": bool, "append": bool}.
"""

import json
import os
import sys

from pwem.objects import Micrograph, SetOfMicrographs


def make(path, spec):
    micrographs = SetOfMicrographs(filename=path)
    if spec.get("append"):
        micrographs.loadAllProperties()
        micrographs.enableAppend()
    else:
        micrographs.setSamplingRate(spec["sampling"])
        acquisition = micrographs.getAcquisition()
        acquisition.setVoltage(spec["voltage"])
        acquisition.setSphericalAberration(spec["cs"])
        acquisition.setAmplitudeContrast(spec["q0"])
        acquisition.setMagnification(spec["magnification"])
    disabled = set(spec.get("disabled", []))
    for index, name in enumerate(spec["files"]):
        item = Micrograph(location=name)
        item.setMicName(os.path.basename(name))
        item.setSamplingRate(micrographs.getSamplingRate())
        item.setAcquisition(micrographs.getAcquisition().clone())
        item.setEnabled(index not in disabled)
        micrographs.append(item)
    state = micrographs.STREAM_OPEN if spec.get("open") else micrographs.STREAM_CLOSED
    micrographs.setStreamState(state)
    micrographs.write()
    micrographs.close()


def _value(attribute):
    return attribute.get() if hasattr(attribute, "get") else None


def dump(path):
    micrographs = SetOfMicrographs(filename=path)
    micrographs.loadAllProperties()
    acquisition = micrographs.getAcquisition()
    items = []
    for item in micrographs:
        attributes = {
            name: _value(getattr(item, name))
            for name in sorted(vars(item))
            if name.startswith("_tilt_") and name != "_tilt_psds_image"
        }
        psd = getattr(item, "_tilt_psds_image", None)
        item_acquisition = item.getAcquisition()
        items.append(
            {
                "id": item.getObjId(),
                "enabled": item.isEnabled(),
                "filename": item.getFileName(),
                "micName": item.getMicName(),
                "sampling": item.getSamplingRate(),
                "voltage": item_acquisition.getVoltage(),
                "cs": item_acquisition.getSphericalAberration(),
                "q0": item_acquisition.getAmplitudeContrast(),
                "magnification": item_acquisition.getMagnification(),
                "tilt": attributes,
                "psd": None if psd is None else psd.getFileName(),
            }
        )
    dims = micrographs.getDimensions() if items else None
    out = {
        "size": micrographs.getSize(),
        "stream_state": micrographs.getStreamState(),
        "sampling": micrographs.getSamplingRate(),
        "dims": list(dims) if dims else None,
        "voltage": acquisition.getVoltage(),
        "cs": acquisition.getSphericalAberration(),
        "q0": acquisition.getAmplitudeContrast(),
        "magnification": acquisition.getMagnification(),
        "items": items,
    }
    micrographs.close()
    return out


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "make":
        with open(sys.argv[3]) as handle:
            make(sys.argv[2], json.load(handle))
    else:
        print(json.dumps({path: dump(path) for path in sys.argv[2:]}))
