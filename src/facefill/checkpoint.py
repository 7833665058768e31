"""Weights and training state on disk.

Two kinds of files, kept apart as in STYLE.md:

* **inference weights**: ``<model>_<preset>.safetensors``: the generator's state dict with the
  model name, preset, constructor arguments and training config in the safetensors metadata,
  and a JSON card beside it holding the same plus the file's sha256. Loading never unpickles.
* **training state**: ``checkpoints/step_XXXXXXXX.pt``: generator, discriminator, both
  optimisers, step, RNG states and the resolved config, for ``--resume``; the last K are kept.

Every file is written to a temporary name in the same folder, flushed to disk and renamed
over the target, so a crash or a full disk never leaves a truncated file under the final
name, and the previous file stays intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import FacefillError, os_reason

__all__ = [
    "CheckpointError",
    "atomic_write",
    "save_weights",
    "load_weights",
    "save_training_state",
    "load_training_state",
    "latest_checkpoint",
    "sha256_file",
    "torch_load_reason",
]

_STEP_RE = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(FacefillError):
    """A checkpoint or weights file could not be written or read."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    On any error the temporary file is removed, ``path`` is left as it was, and a
    :class:`CheckpointError` saying why is raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 (and writers may keep it); the usual mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(
                f"could not write {path}: {e.strerror or e}; the previous file is intact"
            ) from e
        raise
    return path


def save_weights(
    model: torch.nn.Module, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Save a registered model's weights as safetensors plus a JSON card with its sha256."""
    config = getattr(model, "config", None)
    if config is None:
        raise CheckpointError("only models built by facefill.create_model can be saved (no .config)")
    from . import __version__

    meta = {
        "format": "facefill",
        "facefill_version": __version__,
        "model": config["name"],
        "preset": config["preset"],
        "kwargs": json.dumps(config["kwargs"]),
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))
    card = {k: (json.loads(v) if k in ("kwargs",) or k in (extra or {}) else v) for k, v in meta.items()}
    card["file"] = path.name
    card["sha256"] = sha256_file(path)
    card_path = path.with_suffix(".json")
    atomic_write(card_path, lambda tmp: Path(tmp).write_text(json.dumps(card, indent=2) + "\n"))
    return path


def load_weights(path: str | Path, expected_sha256: str | None = None, map_location: str = "cpu"):
    """Build the model a facefill weights file describes and load its weights.

    Refuses files that are not safetensors written by facefill, and files whose sha256
    differs from ``expected_sha256`` (or from the card beside them, when there is one).
    """
    from .models import create_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix == ".json":
        raise CheckpointError(f"{path} is a weights card; pass the .safetensors file beside it")
    card_path = path.with_suffix(".json")
    if expected_sha256 is None and card_path.is_file():
        expected_sha256 = _card_sha256(card_path)
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise CheckpointError(f"{path} does not match its sha256 {expected_sha256[:12]}…; the file is corrupt or was replaced")
    try:
        with safe_open(str(path), framework="pt", device=map_location) as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several kinds on foreign files
        raise CheckpointError(f"{path} is not a safetensors weights file ({type(e).__name__})") from None
    if meta.get("format") != "facefill" or "model" not in meta:
        raise CheckpointError(f"{path} is not a facefill weights file (no facefill metadata)")
    model = _model_from_metadata(path, meta, create_model)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit model {meta['model']}: {str(e).splitlines()[0]}") from None
    return model, meta


def _card_sha256(card_path: Path) -> str:
    """The sha256 a weights card records; a card that cannot be read refuses the load."""
    advice = "restore it (it is written beside the weights) or delete it to load without the check"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckpointError(f"cannot read the weights card {card_path}: {os_reason(e)}; {advice}") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"the weights card {card_path} is not valid JSON ({str(e).splitlines()[0]}); {advice}") from None
    sha = card.get("sha256") if isinstance(card, dict) else None
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise CheckpointError(f"the weights card {card_path} has no sha256 of the weights; {advice}")
    return sha


def _model_from_metadata(path: Path, meta: dict[str, str], create_model: Callable[..., torch.nn.Module]):
    """The model a weights file's metadata describes, or a CheckpointError saying what is wrong."""
    missing = [k for k in ("preset", "kwargs") if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: its facefill metadata has no {' or '.join(missing)}; the file is damaged or not written by facefill")
    try:
        kwargs = json.loads(meta["kwargs"])
    except ValueError:
        raise CheckpointError(f"{path}: its metadata kwargs is not JSON ({meta['kwargs'][:40]!r}); the file is damaged") from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: its metadata kwargs must be a JSON object, got {meta['kwargs'][:40]!r}")
    try:
        return create_model(meta["model"], meta["preset"], **kwargs)
    except (ValueError, TypeError) as e:  # a model, preset or argument this facefill does not have
        raise CheckpointError(
            f"{path}: {str(e).splitlines()[0]} (written by facefill {meta.get('facefill_version', '?')}; "
            "load it with that version)"
        ) from None


def torch_load_reason(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line, without torch's advice
    to load it with ``weights_only=False`` (which would run whatever code the file holds)."""
    text = str(error)
    if "Weights only load failed" not in text:
        return (text.strip().splitlines() or [type(error).__name__])[0]
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = next((ln for ln in lines if not ln.startswith(skip) and not ln.endswith("error:")), "unsupported content")
    return f"it holds pickled objects other than tensors ({reason}), which facefill does not load"


def _checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:08d}.pt"


def save_training_state(folder: str | Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write the full training state atomically; delete all but the newest ``keep_last``."""
    folder = Path(folder)

    def write(tmp: str) -> None:
        # Through a Python file: a full disk is an OSError (ENOSPC), where torch's own writer
        # raises a RuntimeError ("enforce fail at inline_container.cc").
        with open(tmp, "wb") as f:
            torch.save(state, f)

    path = atomic_write(_checkpoint_path(folder, step), write)
    existing = sorted(folder.glob("step_*.pt"), key=lambda p: int(_STEP_RE.search(p.name).group(1)))
    for old in existing[: max(0, len(existing) - keep_last)]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = [p for p in Path(folder).glob("step_*.pt") if _STEP_RE.search(p.name)]
    return max(found, key=lambda p: int(_STEP_RE.search(p.name).group(1))) if found else None


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Load a training state written by :func:`save_training_state` (tensors and plain data only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read training state {path}: {torch_load_reason(e)}") from None
    missing = {"step", "generator", "opt_g", "scaler", "rng"} - (set(state) if isinstance(state, dict) else set())
    if missing:
        raise CheckpointError(
            f"{path} is not a facefill training state (no {', '.join(sorted(missing))}); "
            "move it out of checkpoints/ or start without --resume"
        )
    return state
