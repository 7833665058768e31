"""Measure the five-point face template of facefill.photo.align from the training crops.

Runs YuNet on every training crop of the demo weights' data (the folders below, or those
given) and writes the mean landmark positions per folder and pooled, with the spread of the
crops around them, to benchmarks/results/face_template.json. Only numbers are written; the
crops (CelebA, faces128) are never copied. The pooled ``template`` is ``TEMPLATE`` in
src/facefill/photo/align.py.

    python benchmarks/face_template.py [FOLDER ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from facefill import bench
from facefill.photo.align import measure_template

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "data" / "celeba128", ROOT.parent / "shared" / "data" / "faces128"]  # the demo weights' data


def main(argv: list[str]) -> None:
    folders = [Path(a) for a in argv] or DEFAULT
    result = measure_template(folders)
    result["folders"] = [f.name for f in folders]
    result["command"] = bench.command_line(argv)
    out = ROOT / "benchmarks" / "results" / "face_template.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
