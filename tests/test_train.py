import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facefill import checkpoint as ckpt
from facefill.cli import app
from facefill.config import load_config
from facefill.errors import FacefillError
from facefill.train import StepSampler, Trainer, TrainingError

from helpers import TINY


def tiny(faces: Path, *extra: str):
    return load_config(None, TINY + [f"data.root={faces}", *extra])


def test_sampler_shards_ranks_and_resumes_exactly():
    full = StepSampler(10, 3, seed=1)
    stream = [k for _, k in zip(range(30), iter(full))]
    resumed = [k for _, k in zip(range(15), iter(StepSampler(10, 3, seed=1, start_step=5)))]
    assert resumed == stream[15:]
    assert sorted(k % 10 for k in stream[:10]) == list(range(10))  # a permutation per epoch
    r0 = [k for _, k in zip(range(6), iter(StepSampler(10, 3, rank=0, world=2, seed=1)))]
    r1 = [k for _, k in zip(range(6), iter(StepSampler(10, 3, rank=1, world=2, seed=1)))]
    assert r0[:3] + r1[:3] + r0[3:] + r1[3:] == stream[:12]


def test_resume_continues_the_same_run(faces, tmp_path):
    straight = Trainer(tiny(faces, "train.iterations=6"), tmp_path / "a")
    straight.fit()
    first = Trainer(tiny(faces, "train.iterations=3"), tmp_path / "b")
    first.fit()
    resumed = Trainer(tiny(faces, "train.iterations=6"), tmp_path / "b", resume=True)
    assert resumed.step == 3
    resumed.fit()
    for (k, a), (_, b) in zip(straight.g_raw.state_dict().items(), resumed.g_raw.state_dict().items()):
        assert torch.equal(a, b), k
    curve = lambda d: [r for r in map(json.loads, (d / "log.jsonl").read_text().splitlines()) if r["kind"] == "loss"]
    assert curve(tmp_path / "a") == curve(tmp_path / "b")
    # Last K training states kept; inference weights with a card load back.
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("*.pt")) == ["step_00000003.pt", "step_00000006.pt"]
    weights = tmp_path / "b" / "apfi_small.safetensors"
    model, meta = ckpt.load_weights(weights)
    assert meta["model"] == "apfi" and json.loads(meta["step"]) == 6
    root = json.loads(meta["train_config"])["data"]["root"]  # relative to the working folder
    assert root == os.path.relpath(faces) and not Path(root).is_absolute()
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed.g_raw.state_dict()[k])


SCHEDULED = [
    "train.ema_decay=0.9",
    "train.lr_warmup=2",
    "train.lr_decay=cosine",
    "train.lr_min_factor=0.1",
    "train.critic_start=2",
    "loss.vgg_input=raw",
    "loss.args={critic_augment: 'color,translation,cutout'}",
]


def test_resume_with_ema_schedule_and_late_critic_equals_one_run(faces, tmp_path):
    straight = Trainer(tiny(faces, "train.iterations=6", *SCHEDULED), tmp_path / "a")
    straight.fit()
    # The same 6-step run, killed after its step-3 checkpoint (the schedule spans all 6 steps).
    killed = Trainer(tiny(faces, "train.iterations=6", *SCHEDULED), tmp_path / "b")
    _kill_after(killed, 3)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    at_kill = killed.train_seconds  # the time up to the step-3 checkpoint
    assert at_kill > 0
    resumed = Trainer(tiny(faces, "train.iterations=6", *SCHEDULED), tmp_path / "b", resume=True)
    assert resumed.train_seconds == at_kill  # the stopped session's time comes back with its state
    start = time.perf_counter()
    resumed.fit()
    assert at_kill < resumed.train_seconds <= at_kill + (time.perf_counter() - start)
    _same_state(straight, resumed, names=("g_raw", "d_raw", "ema"))
    log = _loss_rows(tmp_path / "a")
    assert log == _loss_rows(tmp_path / "b")
    # Warm-up from 1 % of lr, then cosine towards 10 %; the critic joins at step 2.
    assert [round(r["lr"] / 1e-3, 4) for r in log[:3]] == [0.01, 0.505, 1.0]
    assert log[-1]["lr"] < log[2]["lr"]
    assert ["d_loss" in r for r in log] == [False, False, True, True, True, True]
    # The exported weights are the EMA's, which differ from the raw generator's.
    model, meta = ckpt.load_weights(tmp_path / "b" / "apfi_small.safetensors")
    assert json.loads(meta["ema"]) is True
    ema = straight.ema.module.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, straight.g_raw.state_dict()[k]) for k, v in ema.items())


def test_ema_warmup_and_init_weights(faces, tmp_path):
    from facefill.train import ema_with_warmup

    ema, new = [torch.zeros(3)], [torch.ones(3)]
    ema_with_warmup(0.999)(ema, new, torch.tensor(1))  # n = 1: decay 2/11, not 0.999
    assert torch.allclose(ema[0], torch.full((3,), 9 / 11))
    first = Trainer(tiny(faces, "train.iterations=2"), tmp_path / "a")
    first.fit()
    weights = tmp_path / "a" / "apfi_small.safetensors"
    second = Trainer(tiny(faces, "train.iterations=1", "train.ema_decay=0.5", f"train.init_weights={weights}"), tmp_path / "b")
    assert second.step == 0
    for k, v in first.g_raw.state_dict().items():
        assert torch.equal(second.g_raw.state_dict()[k], v)
        assert torch.equal(second.ema.module.state_dict()[k], v)
    with pytest.raises(FacefillError, match="holds a apfi generator, this config trains rfr"):
        Trainer(load_config(None, [f"data.root={faces}", "model.generator=rfr", "model.preset=small",
                                   "loss.vgg_weights=random", "data.size=32", "data.workers=0",
                                   f"train.init_weights={weights}", "train.device=cpu"]), tmp_path / "c")


def test_schedule_and_precision_settings_are_checked(faces, tmp_path, monkeypatch):
    for bad, message in (
        ("train.lr_decay=step", "lr_decay must be one of none, cosine, linear"),
        ("train.ema_decay=1.0", "ema_decay must be in"),
        ("train.amp=fp16", "fp16 needs a CUDA device"),
        ("train.amp=fp8", "precision must be one of"),
    ):
        with pytest.raises(FacefillError, match=message):
            Trainer(tiny(faces, bad), tmp_path / "x")
    from facefill.recipes.apfi import APFIRecipe

    monkeypatch.setattr(APFIRecipe, "critic_free_phase", False)  # as the peers' recipes
    with pytest.raises(FacefillError, match="loss.recipe=apfi has no phase without its critic"):
        Trainer(tiny(faces, "train.critic_start=5"), tmp_path / "y")


def test_cpu_trainer_retains_freed_memory_unless_the_config_says_not(faces, tmp_path, monkeypatch):
    import facefill.train.trainer as trainer_mod

    calls = []
    monkeypatch.setattr(trainer_mod, "retain_freed_memory", lambda: calls.append(1) or True)
    Trainer(tiny(faces, "train.device=cpu"), tmp_path / "a")
    assert calls == [1]
    Trainer(tiny(faces, "train.device=cpu", "train.retain_memory=false"), tmp_path / "b")
    assert calls == [1]


def test_train_blend_poisson_has_the_losses_and_critic_see_the_blended_fill(faces, tmp_path, monkeypatch):
    from facefill.blend import poisson_blend
    from facefill.recipes.apfi import APFIRecipe

    seen = {}
    for name in ("generator_loss", "critic_loss"):
        def spy(self, critic, image, mask, parts, _name=name, _original=getattr(APFIRecipe, name)):
            seen[_name] = (image.detach(), mask.detach(), parts["raw"].detach(), parts["output"])
            return _original(self, critic, image, mask, parts)
        monkeypatch.setattr(APFIRecipe, name, spy)
    Trainer(tiny(faces, "train.blend=poisson", "train.iterations=2", "train.val_every=0"), tmp_path).fit()
    image, mask, raw, output = seen["generator_loss"]
    assert output.requires_grad  # the generator's loss reaches the weights through the solve
    assert torch.allclose(output.detach(), poisson_blend(image, raw, mask), atol=1e-6)
    assert not torch.allclose(output.detach(), torch.where(mask > 0.5, raw, image), atol=1e-3)
    assert torch.equal(output.detach() * (1 - mask), image * (1 - mask))  # known pixels kept
    assert torch.equal(seen["critic_loss"][3], output.detach())  # the critic judges the same fill
    with pytest.raises(FacefillError, match="train.blend='seamless' is not allowed: one of poisson, none"):
        Trainer(tiny(faces, "train.blend=seamless"), tmp_path / "bad")


def test_ssim_term_from_loss_args_is_logged_and_in_the_total(faces, tmp_path):
    trainer = Trainer(tiny(faces, "loss.args={ssim: 2.0}", "train.iterations=2", "train.log_every=1",
                           "train.val_every=0"), tmp_path)
    assert trainer.recipe.weights["ssim"] == 2.0
    trainer.fit()
    rows = [r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if r["kind"] == "loss"]
    assert rows and all(0 < r["ssim"] < 1 for r in rows)
    weights = trainer.recipe.weights
    for r in rows:  # the logged total is the weighted sum of the logged terms, SSIM's included
        assert r["total"] == pytest.approx(sum(w * r[k] for k, w in weights.items() if k in r), rel=1e-5)


def test_thirty_steps_lower_the_loss(faces, tmp_path):
    trainer = Trainer(tiny(faces, "train.iterations=30", "train.val_every=0", "train.save_every=30"), tmp_path)
    trainer.fit()
    rows = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines()]
    l1 = [r["l1"] for r in rows if r["kind"] == "loss"]
    assert len(l1) == 30
    assert np.mean(l1[-5:]) < 0.8 * np.mean(l1[:5])
    for key in ("l1", "perceptual", "style", "adv", "total", "d_loss"):
        assert key in rows[-1]


def test_validation_logs_psnr_ssim_and_images(faces, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(tiny(faces, "train.iterations=3", "train.image_every=1"), tmp_path)
    trainer.fit()
    val = [json.loads(r) for r in (tmp_path / "log.jsonl").read_text().splitlines() if '"val"' in r]
    assert val and 0 < val[0]["ssim"] <= 1 and val[0]["psnr"] > 5
    (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0}).Reload()
    for key in ("psnr", "ssim"):  # the same numbers as log.jsonl, at the same steps
        logged = acc.Scalars(f"val/{key}")
        assert [e.step for e in logged] == [r["step"] for r in val]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in val])
    images = acc.Images("train/input|mask|output|truth")
    assert [e.step for e in images] == [1, 2, 3]
    grid = Image.open(io.BytesIO(images[-1].encoded_image_string))
    assert grid.width > 3 * 32 and grid.height >= 32  # the four panels of a 32 px batch
    # The validation images, at each validation: a row per image (the 2 of test.txt), columns
    # masked input | output | truth, each the validation batch's own pixels (8-bit PNG).
    shown = acc.Images("val/masked|output|truth")
    assert [e.step for e in shown] == [r["step"] for r in val]
    grid = torch.from_numpy(np.array(Image.open(io.BytesIO(shown[-1].encoded_image_string)).convert("RGB")))
    image, mask, out = trainer._val_out
    assert len(image) == 2 and tuple(grid.shape) == (2 * 32, 3 * 32, 3)
    for col, want in enumerate((image * (1 - mask), out, image)):
        rows = torch.cat(list(want.expand(-1, 3, -1, -1)), dim=1).permute(1, 2, 0)
        torch.testing.assert_close(grid[:, 32 * col : 32 * (col + 1)].float() / 255, rows, atol=1 / 255 + 1e-6, rtol=0)


def test_several_roots_with_holdout_and_augmentation(faces, tmp_path):
    from facefill.multiroot import validation_set

    other = tmp_path / "other"
    other.mkdir()
    for i in range(6):  # the same faces, mirrored, under other names
        Image.open(faces / f"f{i:02d}.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other / f"o{i}.png")
    (other / "train.txt").write_text("".join(f"o{i}\n" for i in range(6)))
    cfg = tiny(faces, f"data.root=[{faces}, {other}]", "data.holdout=2", "data.holdout_seed=1",
               "data.val_count=3", "data.augment={scale: 0.1, shift: 0.1, color: 0.1}")
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.data_counts == {str(faces): 8, str(other): 4}
    images = trainer.pairs.images
    val = validation_set([faces, other], 32, split="train", holdout=2, holdout_seed=1)
    for k in range(2):
        assert not set(images.datasets[k].ids) & set(val.datasets[k].ids)
        assert len(val.datasets[k]) == 2
    # the validation batch: held-out images, unaugmented, alternating between the folders
    want = torch.stack([val.datasets[0][0], val.datasets[1][0], val.datasets[0][1]])
    assert torch.equal(trainer.val_batch[0], want)
    image, mask = next(trainer._loader())
    assert image.shape == (4, 3, 32, 32) and 0 <= image.min() and image.max() <= 1
    assert images.datasets[0].augment is not None  # the config's augmentation reaches the data


def test_full_disk_leaves_previous_checkpoint_intact(faces, tmp_path, monkeypatch):
    trainer = Trainer(tiny(faces, "train.iterations=3"), tmp_path)
    trainer.fit()
    good = tmp_path / "checkpoints" / "step_00000003.pt"
    before = hashlib.sha256(good.read_bytes()).hexdigest()

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    trainer.step = 4
    with pytest.raises(ckpt.CheckpointError, match="No space left on device.*previous file is intact"):
        trainer.save()
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["step_00000003.pt"]
    assert hashlib.sha256(good.read_bytes()).hexdigest() == before


def test_nonfinite_losses_skip_then_stop(faces, tmp_path, monkeypatch):
    trainer = Trainer(tiny(faces, "train.iterations=10", "train.max_nonfinite=3"), tmp_path)
    real = trainer.recipe.loss.forward
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        total, terms = real(*args, **kwargs)
        return (total * float("nan") if calls["n"] >= 2 else total), terms

    monkeypatch.setattr(trainer.recipe.loss, "forward", sometimes_nan)
    initial = _parameters(trainer)
    after_real_step = []
    step = trainer.train_step

    def record(*args):
        out = step(*args)
        if not after_real_step:
            after_real_step.extend(_parameters(trainer))
        return out

    trainer.train_step = record
    with pytest.raises(TrainingError, match="3 non-finite losses in a row"):
        trainer.fit()
    assert trainer.nonfinite_total == 3
    assert trainer.step == 3  # one real step, two skipped; the third stops the run
    # The real step moved the generator's and the critic's parameters, the skipped ones did not
    # (parameters, not state_dicts: BatchNorm's running statistics move on every forward).
    assert any(not torch.equal(a, b) for a, b in zip(initial, after_real_step))
    assert all(torch.equal(a, b) for a, b in zip(after_real_step, _parameters(trainer)))


def _parameters(trainer) -> list[torch.Tensor]:
    nets = [trainer.g_raw] + ([trainer.d_raw] if trainer.d_raw is not None else [])
    return [p.detach().clone() for net in nets for p in net.parameters()]


def _kill_after(trainer, step: int) -> None:
    """Make ``trainer.fit()`` raise KeyboardInterrupt as step ``step + 1`` begins."""
    train_step = trainer.train_step

    def die(*args):
        if trainer.step == step:
            raise KeyboardInterrupt
        return train_step(*args)

    trainer.train_step = die


def _same_state(a, b, names=("g_raw", "d_raw")) -> None:
    for name in names:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, k)


def _loss_rows(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "loss"]


def test_finetuning_switches_the_lr_freezes_encoder_batchnorm_and_resumes_exactly(faces, tmp_path):
    phases = ["train.iterations=2", "train.finetune_iterations=2", "train.finetune_lr=1e-5", "train.save_every=2",
              "train.val_every=0", "train.image_every=0"]
    straight = Trainer(tiny(faces, *phases), tmp_path / "a")
    bns = straight.g_raw.encoder_batchnorms()
    assert bns
    seen = []
    train_step = straight.train_step

    def watch(*args):
        seen.append(([bn.training for bn in bns], [bn.running_mean.clone() for bn in bns], _parameters(straight)))
        return train_step(*args)

    straight.train_step = watch
    straight.fit()
    seen.append((None, [bn.running_mean.clone() for bn in bns], _parameters(straight)))
    assert [r["lr"] for r in _loss_rows(tmp_path / "a")] == [1e-3, 1e-3, 1e-5, 1e-5]
    assert [all(flags) for flags, *_ in seen[:2]] == [True, True] and not any(any(f) for f, *_ in seen[2:4])
    moved = lambda i: any(not torch.equal(a, b) for a, b in zip(seen[i][1], seen[i + 1][1]))
    assert [moved(i) for i in range(4)] == [True, True, False, False]  # frozen statistics in steps 3 and 4
    changed = lambda i: any(not torch.equal(a, b) for a, b in zip(seen[i][2], seen[i + 1][2]))
    assert all(changed(i) for i in range(4))  # the weights still train
    # Killed at the phase boundary and resumed: the same run, bit for bit.
    killed = Trainer(tiny(faces, *phases), tmp_path / "b")
    _kill_after(killed, 2)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(tiny(faces, *phases), tmp_path / "b", resume=True)
    resumed.fit()
    _same_state(straight, resumed)
    assert _loss_rows(tmp_path / "a") == _loss_rows(tmp_path / "b")


def test_log_and_save_every_zero_mean_only_the_last_step(faces, tmp_path):
    Trainer(tiny(faces, "train.iterations=3", "train.log_every=0", "train.save_every=0", "train.val_every=0"), tmp_path).fit()
    assert [r["step"] for r in _loss_rows(tmp_path)] == [3]
    assert [p.name for p in (tmp_path / "checkpoints").glob("step_*.pt")] == ["step_00000003.pt"]


def test_cli_refuses_unknown_key_and_missing_vgg(faces, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--out", str(tmp_path), "--set", "train.batchsize=3"])
    assert result.exit_code == 2
    assert "unknown config key 'train.batchsize'" in result.output and "train.batch_size" in result.output
    monkeypatch.delenv("FACEFILL_VGG16", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    args = ["train", "--out", str(tmp_path / "o")]
    for item in TINY + [f"data.root={faces}"]:
        if not item.startswith("loss.vgg_weights"):
            args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "VGG16" in result.output and "FACEFILL_VGG16" in result.output
    assert "Traceback" not in result.output


def test_paper_config_is_the_papers_recipe():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "apfi_celeba256.yaml")
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.iterations, cfg.train.finetune_lr) == (4e-4, 6, 450_000, 1e-5)
    assert (cfg.loss.adv, cfg.loss.perceptual, cfg.loss.style, cfg.loss.l1) == (0.05, 0.05, 120.0, 1.0)
    assert cfg.data.size == 256 and cfg.model.preset == "paper" and cfg.loss.resize == 224
    cpu = load_config(Path(__file__).resolve().parents[1] / "configs" / "apfi_faces_cpu.yaml")
    assert cpu.model.preset == "small" and cpu.data.root.endswith("shared/data/faces128")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k not in ("args", "augment") else {f"{prefix}{k}": v})
    return out


def test_tuned_recipe_differs_from_the_papers_exactly_where_its_config_says(faces, tmp_path):
    from facefill.config import config_to_dict

    configs = Path(__file__).resolve().parents[1] / "configs"
    paper = _flat(config_to_dict(load_config(configs / "apfi_faces_cpu.yaml")))
    tuned = _flat(config_to_dict(load_config(configs / "apfi_faces_tuned.yaml")))
    differs = {k for k in paper if paper[k] != tuned[k]}
    assert differs == {
        "data.root", "data.val_count", "data.augment", "loss.vgg_input", "loss.args", "train.val_every",
        "train.iterations", "train.save_every", "train.lr_warmup", "train.lr_decay", "train.lr_min_factor",
        "train.ema_decay",
    }, differs
    assert (tuned["loss.adv"], tuned["loss.perceptual"], tuned["loss.style"], tuned["loss.l1"]) == (None,) * 4  # paper weights
    stage1 = _flat(config_to_dict(load_config(configs / "apfi_faces_tuned64.yaml")))
    assert {k for k in tuned if tuned[k] != stage1[k]} == {
        "data.size", "train.iterations", "train.lr_warmup", "train.lr_decay", "train.lr_min_factor",
        "train.ema_decay", "train.critic_start",
    }
    # Both build: the tuned one with raw VGG input and DiffAugment on the critic.
    for name, extra in (("apfi_faces_cpu.yaml", []), ("apfi_faces_tuned.yaml", ["loss.args={critic_augment: 'translation,cutout'}"])):
        cfg = load_config(configs / name, [f"data.root={faces}", "data.size=32", "loss.vgg_weights=random",
                                           "model.generator_args={width: 8, reasoning: [8, 16, 16], unet: [8, 16, 16], cycles: 2}",
                                           "data.workers=0", "data.val_count=0", "train.device=cpu", *extra])
        trainer = Trainer(cfg, tmp_path / name)
        raw = name != "apfi_faces_cpu.yaml"
        assert trainer.recipe.loss.vgg.input_convention == ("raw" if raw else "imagenet")
        assert trainer.recipe.critic_augment == (("translation", "cutout") if raw else ())
        assert (trainer.ema is not None) == raw


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys, torch, torch.distributed as dist
    from facefill.config import load_config
    from facefill.train import Trainer
    out, config, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    trainer = Trainer(load_config(None if config == "-" else config, overrides), out)

    def digest():
        h = hashlib.sha256()
        # Parameters, not buffers: BN running statistics are per rank between DDP's broadcasts.
        nets = [trainer.g_raw] + ([trainer.d_raw] if trainer.d_raw is not None else [])
        for p in (p for net in nets for p in net.parameters()):
            h.update(p.detach().numpy().tobytes())
        return h.hexdigest()

    before = digest()
    trainer.fit()
    assert not dist.is_initialized()  # fit closed the group it started
    open(f"{out}/rank{trainer.rank}.sha", "w").write(before + " " + digest())
    """
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Tiny versions of the recipes whose critic is called in unusual ways under DDP: LaMa's R1
# (a double backward through the wrapped critic), EdgeConnect's two critics in one forward,
# PConv without a critic.
DDP_CASES = {
    "apfi": ("-", TINY),
    "lama": (CONFIGS / "lama_faces_cpu.yaml", [
        "model.generator_args={width: 8, blocks: 1}", "model.discriminator_args={width: 8, layers: 2}",
        "data.size=32", "loss.vgg_weights=random", "train.batch_size=2", "train.device=cpu",
    ]),
    "edgeconnect": (CONFIGS / "edgeconnect_faces_cpu.yaml", [
        "model.generator_args={width: 4, blocks: 1}", "model.discriminator_args={width: 4}",
        "data.size=32", "loss.vgg_weights=random", "train.batch_size=2", "train.device=cpu",
    ]),
    "pconv": (CONFIGS / "pconv_faces_cpu.yaml", [
        "model.generator_args={width: 8, layers: 3}", "data.size=32", "loss.vgg_weights=random",
        "train.batch_size=2", "train.device=cpu",
    ]),
}


@pytest.mark.parametrize("name", ["lama", "edgeconnect"])
def test_resume_with_the_recipes_critics_equals_one_run(name, faces, tmp_path):
    """LaMa (R1 penalty: a double backward through the critic) and EdgeConnect (two critics,
    spectral norm), killed after a checkpoint and resumed: the same weights, bit for bit."""
    config, overrides = DDP_CASES[name]
    settings = overrides + [f"data.root={faces}", "data.workers=0", "data.val_count=0", "train.iterations=4",
                            "train.save_every=2", "train.log_every=1", "train.image_every=0", "train.amp=fp32"]
    straight = Trainer(load_config(config, settings), tmp_path / "a")
    straight.fit()
    killed = Trainer(load_config(config, settings), tmp_path / "b")
    _kill_after(killed, 2)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(load_config(config, settings), tmp_path / "b", resume=True)
    assert resumed.step == 2
    resumed.fit()
    _same_state(straight, resumed)
    rows = _loss_rows(tmp_path / "a")
    assert rows == _loss_rows(tmp_path / "b") and len(rows) == 4 and "d_loss" in rows[-1]


@pytest.mark.parametrize("name", list(DDP_CASES))
def test_ddp_two_processes_keep_identical_weights(name, faces, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    config, overrides = DDP_CASES[name]
    overrides = overrides + [
        f"data.root={faces}", "data.workers=0", "data.val_count=2", "train.iterations=3",
        "train.val_every=0", "train.image_every=0", "train.save_every=3", "train.amp=fp32",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a local rendezvous on a free port (two runs at once do not collide).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path), str(config), *overrides]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    (before0, after0), (before1, after1) = ((tmp_path / f"rank{r}.sha").read_text().split() for r in (0, 1))
    assert before0 == before1 and after0 == after1  # the same start, the same weights after
    assert after0 != before0  # and training changed them
    assert (tmp_path / f"{name}_small.safetensors").exists()
    assert not (tmp_path / "checkpoints").exists() or len(list((tmp_path / "checkpoints").glob("*.pt"))) == 1


def test_classical_generator_is_refused_by_the_trainer(faces, tmp_path):
    with pytest.raises(FacefillError, match="nothing to train"):
        Trainer(tiny(faces, "model.generator=telea"), tmp_path)


def test_init_widen_starts_a_wider_generator_from_narrower_weights(faces, tmp_path):
    first = Trainer(tiny(faces, "train.iterations=1"), tmp_path / "a")
    first.fit()
    weights = tmp_path / "a" / "apfi_small.safetensors"
    wider = "model.generator_args={width: 8, reasoning: [8, 16, 16], unet: [12, 24, 24], cycles: 2}"
    with pytest.raises(FacefillError, match="does not fit this config's generator.*train.init_widen=true"):
        Trainer(tiny(faces, wider, f"train.init_weights={weights}"), tmp_path / "b")
    second = Trainer(tiny(faces, wider, f"train.init_weights={weights}", "train.init_widen=true", "train.iterations=1",
                          "train.ema_decay=0.9"), tmp_path / "c")
    narrow, _ = ckpt.load_weights(weights)
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    narrow.eval(), second.ema.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(second.ema.module(image, mask), narrow(image, mask), atol=1e-5, rtol=0)
    second.fit()
    assert ckpt.load_weights(tmp_path / "c" / "apfi_small.safetensors")[0].unet.widths == (12, 24, 24)
    with pytest.raises(FacefillError, match="cannot be widened into this config's generator: .*widening only adds channels"):
        Trainer(tiny(faces, "model.generator_args={width: 8, reasoning: [8, 16, 16], unet: [4, 8, 8], cycles: 2}",
                     f"train.init_weights={weights}", "train.init_widen=true"), tmp_path / "d")
