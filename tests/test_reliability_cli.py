"""Bad inputs and faults through the real command line (``python -m facefill`` in a subprocess).

Every case must end with exit code 2, one ``error:`` line naming what was wrong (no
"Traceback"), and no file written, changed or removed: the inputs and the case's folder are
compared before and after. Read-only folders and a full disk are real: the command runs in a
private mount namespace (``unshare``) where the folder is a read-only bind mount or a 64 kB
tmpfs; those cases skip, saying why, where ``unshare`` cannot do that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facefill

READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
FULL = 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"'


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$0"', "/mnt"], capture_output=True, text=True
    )
    if probe.returncode:
        return f"unshare cannot mount in a private namespace here: {probe.stderr.strip()[:120]}"
    return None


NAMESPACE_PROBLEM = _namespace_problem()
# The facefill under test, whatever the subprocess's working folder (the case's own).
SOURCE = os.pathsep.join([str(Path(facefill.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny APFI weights, a face photo, a hole mask, a data folder and a mask set."""
    from facefill import create_model
    from facefill.checkpoint import save_weights
    from facefill.masks import generate_binned_masks

    root = tmp_path_factory.mktemp("inputs")
    model = create_model("apfi", preset="small", width=8, reasoning=(8, 16, 16), unet=(8, 16, 16), cycles=2)
    weights = save_weights(model, root / "tiny.safetensors", extra={"train_config": {"data": {"size": 64}}})
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data / f"f{i}.png")
    (data / "test.txt").write_text("f0\nf1\n")
    mask = root / "hole.png"
    hole = np.zeros((64, 64), np.uint8)
    hole[20:40, 20:40] = 255
    Image.fromarray(hole).save(mask)
    generate_binned_masks(root / "masks", 64, 1, 0, "0.1-0.2")
    aligned = root / "celeba" / "img_align_celeba"  # CelebA's aligned layout, two images
    aligned.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(aligned / f"00000{i + 1}.jpg")
    prior = root / "prior"  # what earlier runs left: one file each of demo, export, evaluate, inpaint
    prior.mkdir()
    for name in ("demo_output.png", "g.onnx", "metrics.json", "f1.png"):
        (prior / name).write_bytes(b"an earlier run's output")
    return {"w": Path(weights), "card": Path(weights).with_suffix(".json"), "img": data / "f0.png",
            "mask": mask, "data": data, "masks": root / "masks", "root": root, "celeba": root / "celeba",
            "prior": prior}


def _state(*folders: Path) -> dict[str, str]:
    """Every file and folder below ``folders`` with the sha256 of its content."""
    state = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            state[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return state


# (id, arguments, what the message must say, mount: None, "ro" or "full" on {ro} / {full})
CASES = [
    ("export-output-is-its-weights", ["export", "-w", "{w}", "-o", "{w}"], "is an input (the weights)", None),
    ("export-output-is-its-card", ["export", "-w", "{w}", "-o", "{card}"], "is an input (the weights card)", None),
    ("export-cycles-unbounded", ["export", "-w", "{w}", "-o", "{tmp}/g.onnx", "--cycles", "100000"], "at most 64 cycles", None),
    ("export-size-unbounded", ["export", "-w", "{w}", "-o", "{tmp}/g.onnx", "--size", "100000"], "at most 2048", None),
    ("export-out-exists", ["export", "-w", "{w}", "-o", "{prior}/g.onnx", "--size", "64"], "pass --overwrite", None),
    ("evaluate-out-holds-metrics", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{prior}"],
     "metrics.json exists", None),
    ("demo-out-holds-a-demo", ["demo", "--out", "{prior}", "--device", "cpu"], "demo_output.png exists", None),
    ("inpaint-output-exists", ["inpaint", "{img}", "--mask", "{mask}", "-o", "{data}/f1.png", "-w", "{w}", "--aligned"],
     "f1.png exists", None),
    ("inpaint-folder-output-exists", ["inpaint", "{data}", "--mask", "{mask}", "-o", "{prior}", "-w", "{w}", "--aligned"],
     "f1.png exists", None),
    ("export-missing-weights", ["export", "-w", "{tmp}/none.safetensors", "-o", "{tmp}/g.onnx"], "does not exist", None),
    ("export-unknown-format", ["export", "-w", "{w}", "-o", "{tmp}/g.tflite", "-f", "tflite"], "unknown --format", None),
    ("export-read-only-folder", ["export", "-w", "{w}", "-o", "{ro}/g.onnx", "--size", "64"], "read-only file system", "ro"),
    ("evaluate-cycles-range-unbounded", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{tmp}/ev",
                                         "--cycles", "1-100000000"], "at most 64 cycles", None),
    ("evaluate-size-unbounded", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{tmp}/ev",
                                 "--size", "100000"], "at most 2048", None),
    ("evaluate-cycles-unreadable", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{tmp}/ev",
                                    "--cycles", "six"], "cannot read 'six'", None),
    ("evaluate-unknown-model", ["evaluate", "--model", "nosuch", "-d", "{data}", "-m", "{masks}", "-o", "{tmp}/ev"],
     "unknown --model 'nosuch'", None),
    ("evaluate-read-only-out", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{ro}/ev",
                                "--samples", "0"], "read-only file system", "ro"),
    ("evaluate-out-is-a-file", ["evaluate", "-w", "{w}", "-d", "{data}", "-m", "{masks}", "-o", "{img}/ev",
                                "--samples", "0"], "f0.png", None),
    ("train-read-only-out", ["train", "--out", "{ro}/run", "--set", "data.root={data}", "--set", "train.device=cpu"],
     "read-only file system; choose a folder you can write to", "ro"),
    ("masks-read-only-out", ["masks", "generate", "--out", "{ro}/m", "--per-bin", "2", "--size", "64"],
     "cannot write in", "ro"),
    ("masks-disk-full", ["masks", "generate", "--out", "{full}/m", "--per-bin", "200", "--size", "128"],
     "no space left on the device", "full"),
    ("masks-size-zero", ["masks", "generate", "--out", "{tmp}/m", "--per-bin", "1", "--size", "0"], "size", None),
    ("masks-bin-reversed", ["masks", "generate", "--out", "{tmp}/m", "--per-bin", "1", "--bins", "0.9-0.1"], "0.9", None),
    ("masks-out-not-empty", ["masks", "generate", "--out", "{root}", "--per-bin", "1", "--size", "64"], "--overwrite", None),
    ("masks-verify-missing", ["masks", "verify", "{tmp}/none"], "none", None),
    ("demo-read-only-out", ["demo", "--out", "{ro}/demo", "--device", "cpu"], "read-only file system", "ro"),
    ("demo-missing-weights", ["demo", "--out", "{tmp}/demo", "--weights", "{tmp}/none.safetensors"], "does not exist", None),
    ("inpaint-missing-photo", ["inpaint", "{tmp}/none.png", "--mask", "{mask}", "-o", "{tmp}/o.png", "-w", "{w}"],
     "none.png", None),
    ("inpaint-read-only-out", ["inpaint", "{img}", "--mask", "{mask}", "-o", "{ro}/o.png", "-w", "{w}", "--aligned",
                               "--device", "cpu"], "read-only file system", "ro"),
    ("serve-host-not-an-address", ["serve", "-w", "{w}", "--host", "999.1.1.1"], "is not an IP address", None),
    ("serve-host-not-this-machine", ["serve", "-w", "{w}", "--host", "192.0.2.1"], "not an address of this machine", None),
    ("serve-max-file-size-unreadable", ["serve", "-w", "{w}", "--max-file-size", "lots"], "--max-file-size", None),
    ("serve-missing-weights", ["serve", "-w", "{tmp}/none.safetensors"], "does not exist", None),
    ("info-unknown-model", ["info", "nosuch"], "unknown model 'nosuch'", None),
    ("prepare-celeba-read-only-out", ["prepare-celeba", "--src", "{celeba}", "--out", "{ro}/celeba", "--size", "32",
                                      "--test-count", "1", "--workers", "1"],
     "read-only file system; choose a folder you can write to", "ro"),
    ("prepare-celeba-missing-source", ["prepare-celeba", "--src", "{tmp}/none", "--out", "{tmp}/celeba"], "none", None),
]


@pytest.mark.parametrize("args, message, mount", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_or_fault_ends_in_one_line_exit_2_and_no_file(inputs, tmp_path, args, message, mount):
    if mount and NAMESPACE_PROBLEM:
        pytest.skip(NAMESPACE_PROBLEM)
    case = tmp_path / "case"
    guarded = case / "guarded"  # the read-only or full folder
    guarded.mkdir(parents=True)
    names = {k: str(v) for k, v in inputs.items()} | {"tmp": str(case), "ro": str(guarded), "full": str(guarded)}
    command = [sys.executable, "-m", "facefill", *(a.format(**names) for a in args)]
    if mount:
        command = ["unshare", "-rm", "sh", "-c", READ_ONLY if mount == "ro" else FULL, str(guarded), *command]
    before = _state(inputs["root"], case)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "PYTHONPATH": SOURCE}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=case)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output and output.count("\n") == 0, output
    assert output.startswith("error: ") and message in output, output
    assert _state(inputs["root"], case) == before  # nothing written, changed or removed
