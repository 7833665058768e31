"""Bad inputs and faults: one line saying what is wrong (exit code 2 from the CLI, a typed
exception from the API), never a traceback, and no file left behind.

Table-driven: a case is a row of ``CLI_CASES`` (run as ``python -m facefill ...`` in a
subprocess) or ``API_CASES`` (a call that must raise). A row's ``setup(ctx)`` builds its inputs
under ``ctx.tmp``; the tree under ``ctx.tmp`` is listed after the setup and must be the same
after the call: nothing written, nothing changed, nothing deleted, no stray temporary file.
The faults that are meant to leave a run behind (a full disk, SIGTERM) are tests of their own
at the end.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import save_file

from facefill import create_model
from facefill.checkpoint import CheckpointError, load_weights, save_weights
from facefill.config import check_config, load_config
from facefill.errors import ConfigError, FacefillError
from facefill.train import Trainer, TrainingError

from helpers import TINY

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class Ctx:
    tmp: Path
    faces: Path

    @property
    def run(self) -> Path:
        return self.tmp / "run"

    def overrides(self, *extra: str) -> list[str]:
        return [*TINY, f"data.root={self.faces}", *extra]

    def train_args(self, *extra: str, out: Path | None = None) -> list[str]:
        args = ["train", "--out", str(out or self.run)]
        for item in self.overrides(*extra):
            args += ["--set", item]
        return args

    def trainer(self, *extra: str, out: Path | None = None, **kw: Any) -> Trainer:
        return Trainer(load_config(None, self.overrides(*extra)), out or self.run, **kw)

    def weights(self, name: str = "g.safetensors", **meta: str | None) -> Path:
        """A generator weights file (no card) whose metadata has ``meta`` changed (None: removed)."""
        path = self.tmp / name
        state = {k: v.contiguous() for k, v in create_model("pconv", "small", width=4, layers=2).state_dict().items()}
        full = {"format": "facefill", "model": "pconv", "preset": "small", "kwargs": '{"width": 4, "layers": 2}'}
        full.update(meta)
        save_file(state, str(path), metadata={k: v for k, v in full.items() if v is not None})
        return path

    def card(self, text: str) -> Path:
        """Good weights with a card beside them that holds ``text``."""
        path = save_weights(create_model("pconv", "small", width=4, layers=2), self.tmp / "carded.safetensors")
        path.with_suffix(".json").write_text(text)
        return path

    def checkpoint(self, obj: Any, step: int = 40) -> Path:
        folder = self.run / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{step:08d}.pt"
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        else:
            torch.save(obj, path)
        return path


class RunsCode:
    """A pickled object that would run code when unpickled without ``weights_only``."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@contextmanager
def read_only(folder: Path):
    """``folder`` made read-only: chmod for a user, ``chattr +i`` for root (whom modes do not stop)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        folder.chmod(0o755)
        pytest.skip("running as root where chattr +i is not allowed: no way to make a folder read-only")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message, message


# --------------------------------------------------------------------------- the CLI


@dataclass(frozen=True)
class CliCase:
    name: str
    argv: Callable[[Ctx], list[str]]
    match: str  # a regular expression the ``error:`` line must contain
    setup: Callable[[Ctx], Any] | None = None


CLI_CASES = [
    CliCase("train-lr-nan", lambda c: c.train_args("train.lr=nan"), r"train\.lr=nan .*finite number > 0"),
    CliCase(
        "train-png-as-config",
        lambda c: ["train", "--config", str(c.faces / "f00.png"), "--out", str(c.run)],
        r"f00\.png is not a text \(UTF-8 YAML\) file",
    ),
    CliCase(
        "train-out-is-a-file", lambda c: c.train_args(), r"is an existing file, not a folder",
        setup=lambda c: c.run.write_text("mine"),
    ),
    CliCase(
        "train-over-another-runs-checkpoints", lambda c: c.train_args(),
        r"holds another run's checkpoints \(up to step_00000040\.pt\).*--resume.*--overwrite",
        setup=lambda c: c.checkpoint(b"the other run"),
    ),
    CliCase(
        "train-recipe-arg-out-of-range",
        lambda c: c.train_args("model.generator=edgeconnect", "model.discriminator=edgeconnect_d",
                               "loss.recipe=edgeconnect", "loss.args={mode: 7}"),
        r"config key loss\.args\.mode=7 is not allowed: one of 1, 2, 3, 4",
    ),
    CliCase(
        "train-size-and-batch-beyond-any-memory", lambda c: c.train_args("data.size=2048", "train.batch_size=4096"),
        r"data\.size=2048 with train\.batch_size=4096 does not fit in memory: .* GiB of activations per image",
    ),
    CliCase(
        "export-weights-of-an-unknown-model",
        lambda c: ["export", "--weights", str(c.tmp / "g.safetensors"), "--out", str(c.tmp / "g.onnx")],
        r"unknown model 'nosuch'",
        setup=lambda c: c.weights(model="nosuch"),
    ),
]

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]),
    "OMP_NUM_THREADS": "1",
    "FACEFILL_NATIVE_BF16": "0",
    "COLUMNS": "200",
}


def _cli(argv: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facefill", *argv], capture_output=True, text=True, timeout=120, env=ENV, cwd=cwd, **kw
    )


def _error_line(run: subprocess.CompletedProcess) -> str:
    output = run.stdout + run.stderr
    assert run.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    return errors[0]


@pytest.fixture
def ctx(tmp_path, faces) -> Ctx:
    return Ctx(tmp_path, faces)


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.name)
def test_cli_refuses_with_one_line_and_leaves_no_file(case, ctx):
    if case.setup:
        case.setup(ctx)
    before = _tree(ctx.tmp)
    line = _error_line(_cli(case.argv(ctx), cwd=ctx.tmp))
    assert re.search(case.match, line), line
    assert _tree(ctx.tmp) == before


def test_cli_train_into_a_read_only_folder(ctx):
    with read_only(ctx.tmp / "ro") as folder:
        before = _tree(ctx.tmp)
        line = _error_line(_cli(ctx.train_args("train.iterations=1", out=folder / "run"), cwd=ctx.tmp))
        assert re.search(r"ro/run: .*ro: (permission denied; choose a path you may use or change its permissions|"
                         r"read-only file system; choose a folder you can write to)$", line), line
        assert _tree(ctx.tmp) == before


@pytest.mark.parametrize("where", ["_build_data", "_prepare_out"])  # building the run, and fit
def test_train_words_an_os_error_as_every_other_command_does(ctx, monkeypatch, where):
    """One wording per fault: ``train`` says what the error boundary of every command says
    (facefill.errors.describe_os_error), whether the error comes while the run is built or in fit."""
    from typer.testing import CliRunner

    from facefill.cli import app
    from facefill.errors import describe_os_error

    error = OSError(errno.ENOSPC, "No space left on device", str(ctx.tmp / "disk" / "file"))

    def fault(self, *args):
        raise error

    monkeypatch.setattr(Trainer, where, fault)
    result = CliRunner().invoke(app, ctx.train_args("train.iterations=1"))
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines() == [f"error: {describe_os_error(error)}"], result.output


# --------------------------------------------------------------------------- the API


@dataclass(frozen=True)
class ApiCase:
    name: str
    call: Callable[[Ctx], Any]
    error: type[Exception]
    match: str
    setup: Callable[[Ctx], Any] | None = None


def _config_case(key_value: str, match: str) -> ApiCase:
    return ApiCase(f"config-{key_value}", lambda c: c.trainer(key_value), ConfigError, match)


def _args_case(recipe: str, args: str, match: str) -> ApiCase:
    """A recipe's ``loss.args`` refused by the config check itself, before a model is built."""
    return ApiCase(
        f"loss-args-{recipe}-{args}",
        lambda c: check_config(load_config(None, c.overrides(f"loss.recipe={recipe}", f"loss.args={args}"))),
        ConfigError, match,
    )


API_CASES = [
    _config_case("train.lr=-1", r"train\.lr=-1\.0 is not allowed: a finite number > 0"),
    _config_case("train.d_lr=nan", r"train\.d_lr=nan is not allowed"),
    _config_case("train.betas=[2,3]", r"train\.betas=\[2\.0, 3\.0\] is not allowed: two numbers in \[0, 1\)"),
    _config_case("train.batch_size=0", r"train\.batch_size=0 is not allowed: an integer >= 1"),
    _config_case("train.batch_size=-1", r"train\.batch_size=-1 "),
    _config_case("data.workers=-1", r"data\.workers=-1 is not allowed: an integer >= 0"),
    _config_case("train.save_every=-1", r"train\.save_every=-1 .*0: only the last step"),
    _config_case("train.log_every=-1", r"train\.log_every=-1 "),
    _config_case("train.iterations=-5", r"train\.iterations=-5 is not allowed: an integer >= 1"),
    _config_case("train.keep_last=0", r"train\.keep_last=0 is not allowed: an integer >= 1"),
    _config_case("train.seed=-1", r"train\.seed=-1 is not allowed: an integer from 0 to 2\*\*31 - 1"),
    _config_case("loss.adv=nan", r"loss\.adv=nan is not allowed: a finite weight >= 0"),
    _config_case("data.size=7", r"data\.size=7 is not allowed for apfi: a multiple of its stride \d+"),
    _config_case("data.size=4096", r"data\.size=4096 is not allowed: at most 2048 pixels a side \(facefill\.limits\.MAX_SIZE\)"),
    ApiCase("config-size-and-batch-beyond-any-memory", lambda c: c.trainer("data.size=2048", "train.batch_size=4096"),
            ConfigError, r"data\.size=2048 with train\.batch_size=4096 does not fit in memory: the apfi \(small\) "
            r"generator's training forward alone needs [\d.,]+ GiB of activations per image, [\d.,]+ GiB in all, more than the "
            r"[\d.,]+ GiB of cpu memory here; (even one image does not fit: lower data\.size|lower train\.batch_size)"),
    _config_case("train.device=banana", r"train\.device: device 'banana' is not a torch device"),
    _config_case("train.device=cuda:99", r"train\.device.*(CUDA is not available|has \d+ CUDA devices)"),
    _config_case("train.device=meta", r"train\.device='meta' cannot train"),
    _config_case("model.generator=nosuch", r"model\.generator='nosuch' is not a registered generator; available: apfi"),
    _config_case("model.generator=patchgan", r"model\.generator='patchgan' is not a registered generator"),
    _config_case("model.preset=huge", r"model\.preset='huge': apfi has the presets paper, small"),
    _config_case("model.generator_args={bogus: 1}", r"model\.generator_args=\{'bogus': 1\}: unknown argument\(s\) bogus .*valid: width"),
    _config_case("model.generator_args={width: -3}", r"model\.generator_args=\{'width': -3\}"),
    _config_case("model.discriminator_args={nope: 1}", r"model\.discriminator_args=\{'nope': 1\}: unknown argument"),
    _args_case("edgeconnect", "{mode: 7}", r"^config key loss\.args\.mode=7 is not allowed: one of 1, 2, 3, 4 \(1 edge model, "
               r"2 inpainting model on ground-truth edges, 3 .*, 4 joint\)$"),
    _args_case("edgeconnect", "{mode: true}", r"loss\.args\.mode=True is not allowed: one of 1, 2, 3, 4"),
    _args_case("edgeconnect", "{mode: 2.5}", r"loss\.args\.mode=2\.5 is not allowed"),
    _args_case("edgeconnect", "{fm: -1}", r"loss\.args\.fm=-1 is not allowed: a finite weight >= 0 \(0 switches the term off\)$"),
    _args_case("apfi", "{ssim: -0.5}", r"loss\.args\.ssim=-0\.5 is not allowed: a finite SSIM weight >= 0 \(0 switches the term off\)$"),
    _args_case("lama", "{r1: .nan}", r"loss\.args\.r1=nan is not allowed: a finite coefficient >= 0"),
    _args_case("lama", "{r1: 1e-3}", r"loss\.args\.r1='1e-3' is not allowed: .*YAML reads 1e-3 as text: write it with a decimal point"),
    _args_case("lama", "{l1_hole: -0.5}", r"loss\.args\.l1_hole=-0\.5 is not allowed"),
    _args_case("lama", "{perceptual_layers: [relu9_9]}",
               r"loss\.args\.perceptual_layers=\['relu9_9'\] is not allowed: a VGG16 tap or a non-empty list of them, from relu1_2"),
    _args_case("lama", "{perceptual_layers: []}", r"loss\.args\.perceptual_layers=\[\] is not allowed"),
    _args_case("pconv", "{hole: .inf}", r"loss\.args\.hole=inf is not allowed: a finite weight >= 0"),
    _args_case("pconv", "{tv: abc}", r"loss\.args\.tv='abc' is not allowed: a finite weight >= 0"),
    _args_case("pconv", "{valid: true}", r"loss\.args\.valid=True is not allowed"),
    _args_case("pconv", "{bogus: 1}", r"loss\.args\.bogus is not a setting of loss\.recipe=pconv; its loss\.args are valid, hole, tv, layers$"),
    _args_case("deepfill", "{fm: 1}", r"loss\.args\.fm is not a setting of loss\.recipe=deepfill; it takes no loss\.args$"),
    _args_case("apfi", "{critic_augment: 'translation,zoom'}",
               r"loss\.args\.critic_augment='translation,zoom' is not allowed: a comma-separated list of DiffAugment policies "
               r"from color, translation, cutout"),
    _args_case("apfi", "{critic_augment: 3}", r"loss\.args\.critic_augment=3 is not allowed"),
    _args_case("apfi", "{style_criterion: l2}", r"loss\.args\.style_criterion='l2' is not allowed: one of 'l1', 'mse'$"),
    _args_case("apfi", "{adv: 0.1}", r"loss\.args\.adv is a setting of its own: set loss\.adv instead$"),
    _args_case("nosuch", "{}", r"loss\.recipe='nosuch' is not a recipe; available: apfi, deepfill, edgeconnect, lama, pconv$"),
    ApiCase("config-png", lambda c: load_config(c.faces / "f00.png"), ConfigError, r"is not a text \(UTF-8 YAML\) file"),
    ApiCase("config-folder", lambda c: load_config(c.faces), ConfigError, r"config file .* is a folder; give a YAML file"),
    ApiCase("out-is-a-file", lambda c: c.trainer(), FacefillError, r"is an existing file, not a folder",
            setup=lambda c: c.run.write_text("mine")),
    ApiCase("fresh-run-over-another-run", lambda c: c.trainer(), FacefillError,
            r"holds another run's checkpoints.*--resume.*--overwrite", setup=lambda c: c.checkpoint(b"other")),
    ApiCase("resume-and-overwrite", lambda c: c.trainer(resume=True, overwrite=True), FacefillError,
            r"--resume .* --overwrite .*give one of them"),
    ApiCase("resume-nothing", lambda c: c.trainer(resume=True), FacefillError, r"--resume: no checkpoint in"),
    ApiCase("resume-pickled-code", lambda c: c.trainer(resume=True), CheckpointError,
            r"pickled objects other than tensors .*which facefill does not load",
            setup=lambda c: c.checkpoint({"step": 1, "x": RunsCode()})),
    ApiCase("resume-not-a-training-state", lambda c: c.trainer(resume=True), CheckpointError,
            r"is not a facefill training state \(no generator, opt_g, rng, scaler, step\)",
            setup=lambda c: c.checkpoint(torch.zeros(3))),
    ApiCase("weights-unknown-model", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"unknown model 'nosuch'.*written by facefill", setup=lambda c: c.weights(model="nosuch")),
    ApiCase("weights-no-preset", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"metadata has no preset", setup=lambda c: c.weights(preset=None)),
    ApiCase("weights-unknown-preset", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"unknown preset 'huge'", setup=lambda c: c.weights(preset="huge")),
    ApiCase("weights-kwargs-not-json", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"metadata kwargs is not JSON", setup=lambda c: c.weights(kwargs="{width: 4")),
    ApiCase("weights-kwargs-a-list", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"kwargs must be a JSON object", setup=lambda c: c.weights(kwargs="[4]")),
    ApiCase("weights-unknown-argument", lambda c: load_weights(c.tmp / "g.safetensors"), CheckpointError,
            r"unknown argument\(s\) bogus", setup=lambda c: c.weights(kwargs='{"bogus": 1}')),
    ApiCase("inpainter-weights-unknown-model",
            lambda c: __import__("facefill").Inpainter.from_pretrained(c.tmp / "g.safetensors", device="cpu"),
            CheckpointError, r"unknown model 'nosuch'", setup=lambda c: c.weights(model="nosuch")),
    ApiCase("card-not-json", lambda c: load_weights(c.tmp / "carded.safetensors"), CheckpointError,
            r"weights card .* is not valid JSON.*restore it .* or delete it", setup=lambda c: c.card("{not json")),
    ApiCase("card-without-sha256", lambda c: load_weights(c.tmp / "carded.safetensors"), CheckpointError,
            r"has no sha256 of the weights", setup=lambda c: c.card('{"model": "pconv"}')),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.name)
def test_api_raises_a_typed_one_line_error_and_leaves_no_file(case, ctx):
    if case.setup:
        case.setup(ctx)
    before = _tree(ctx.tmp)
    with pytest.raises(case.error, match=case.match) as raised:
        case.call(ctx)
    _one_line(str(raised.value))
    assert "weights_only" not in str(raised.value)  # never torch's advice to load unsafely
    assert _tree(ctx.tmp) == before


def test_training_refuses_a_batch_beyond_memory_and_says_how_many_fit(ctx, monkeypatch):
    """The bound is the generator's training-forward activations (facefill._memory) times the
    batch against the device's memory, here made 2.5 images' worth: batch 4 refused, 2 accepted."""
    import facefill._memory as memory

    probe = ctx.trainer("train.batch_size=1")
    per_image = memory.forward_peak_bytes(probe.g_raw, 32, grad=True, stride=probe.g_raw.stride)
    monkeypatch.setattr(memory, "device_memory_bytes", lambda device: int(per_image * 2.5))
    before = _tree(ctx.tmp)
    with pytest.raises(ConfigError) as raised:
        ctx.trainer("train.batch_size=4", "train.amp=fp32")
    _one_line(str(raised.value))
    assert re.search(r"^config key data\.size=32 with train\.batch_size=4 does not fit in memory: .*; lower "
                     r"train\.batch_size \(at most 2 fits at this size\) or data\.size$", str(raised.value)), raised.value
    assert _tree(ctx.tmp) == before
    assert ctx.trainer("train.batch_size=2", "train.amp=fp32").cfg.train.batch_size == 2


# --------------------------------------------------------------------------- faults during a run


def test_full_disk_during_a_checkpoint_write_says_what_to_do_and_leaves_no_partial_file(ctx):
    """A real write failure (the file-size limit, EFBIG, as a full disk gives ENOSPC), not a mock."""
    trainer = ctx.trainer("train.iterations=2", "train.save_every=1", "train.val_every=0", "train.image_every=0")
    trainer.fit()  # step 1 and 2 saved
    trainer.cfg.train.iterations = 3
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = 100_000  # above the log and the card, below a training state (about 1.3 MB)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(CheckpointError) as raised:
            trainer.fit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(raised.value)
    _one_line(message)
    assert re.search(r"step 3: could not write .*step_00000003\.pt: File too large; the previous file is intact; "
                     r"free space there .*then continue from step_00000002\.pt with --resume", message), message
    names = sorted(p.name for p in ctx.run.rglob("*") if p.is_file() and not p.name.startswith("events."))
    assert names == ["apfi_small.json", "apfi_small.safetensors", "config.yaml", "log.jsonl",
                     "step_00000001.pt", "step_00000002.pt"], names
    resumed = ctx.trainer("train.iterations=3", resume=True)
    assert resumed.step == 2


def test_stale_temporary_files_of_an_interrupted_write_are_removed_at_the_next_start(ctx):
    ctx.trainer("train.iterations=1").fit()
    stale = [ctx.run / "checkpoints" / ".step_00000002.pt.abc123.tmp", ctx.run / ".apfi_small.safetensors.x1.tmp",
             ctx.run / ".apfi_small.json.y2.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = ctx.run / "checkpoints" / ".notes.tmp"  # not a name facefill writes: not touched
    keep.write_text("mine")
    ctx.trainer("train.iterations=2", resume=True).fit()
    assert not any(p.exists() for p in stale) and keep.exists()


def test_overwrite_clears_the_old_run_before_starting(ctx):
    ctx.trainer("train.iterations=6", "train.save_every=2", "train.keep_last=5").fit()
    assert len(list((ctx.run / "checkpoints").glob("step_*.pt"))) == 3
    ctx.trainer("train.iterations=3", overwrite=True).fit()
    assert sorted(p.name for p in (ctx.run / "checkpoints").glob("step_*.pt")) == ["step_00000003.pt"]
    steps = [json.loads(line)["step"] for line in (ctx.run / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 3 and steps.count(1) == 1  # this run's log only
    assert len(list((ctx.run / "tb").glob("events.out.tfevents.*"))) == 1
    resumed = ctx.trainer("train.iterations=4", resume=True)
    assert resumed.step == 3  # --resume continues the new run, not the old one


def test_sigterm_stops_training_like_sigint(ctx):
    proc = subprocess.Popen(
        [sys.executable, "-m", "facefill", *ctx.train_args("train.iterations=100000", "train.save_every=1",
                                                           "train.val_every=0", "train.image_every=0")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ctx.tmp,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((ctx.run / "checkpoints").glob("step_00000002.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    line = _error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert re.fullmatch(r"error: interrupted at step \d+; continue with --resume", line), line
    assert not list(ctx.run.rglob("*.tmp"))  # a write cut short removed its temporary file
    resumed = ctx.trainer("train.iterations=100000", resume=True)
    assert resumed.step >= 2


def test_a_folder_made_read_only_after_construction_fails_fit_in_one_line(ctx):
    trainer = ctx.trainer("train.iterations=1", out=ctx.tmp / "ro")
    with read_only(ctx.tmp / "ro"):
        before = _tree(ctx.tmp)
        with pytest.raises(TrainingError) as raised:
            trainer.fit()
        assert _tree(ctx.tmp) == before
    _one_line(str(raised.value))
    assert re.search(r"ro/config\.yaml: (permission denied; choose a path you may use or change its permissions|"
                     r"operation not permitted; .*|read-only file system; choose a folder you can write to)$",
                     str(raised.value)), raised.value
