import json

import pytest
import torch

from facefill import InputError, create_model
from facefill.checkpoint import CheckpointError, load_weights, save_weights
from facefill.config import config_from_dict, config_to_dict, load_config
from facefill.metrics import MAX_PSNR, l1_error, psnr, ssim


def test_config_overrides_types_and_unknown_keys(tmp_path):
    cfg = load_config(None, ["train.batch_size=4", "train.betas=[0.5, 0.9]", "data.split=null",
                             "model.generator_args={cycles: 3}", "train.channels_last=false", "train.amp=fp32"])
    assert cfg.train.batch_size == 4 and cfg.train.betas == (0.5, 0.9) and cfg.data.split is None
    assert cfg.model.generator_args == {"cycles": 3} and cfg.train.channels_last is False
    assert cfg.train.amp == "fp32"
    with pytest.raises(InputError, match="unknown config key 'train.nope'.*train.batch_size"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(InputError, match="unknown config key 'foo.x'.*sections data, loss"):
        load_config(None, ["foo.x=1"])
    with pytest.raises(InputError, match="train.batch_size: cannot read 'abc'"):
        load_config(None, ["train.batch_size=abc"])
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  root: faces\n  size: 64\ntrain:\n  iterations: 7\n")
    cfg = load_config(path, ["train.iterations=9"])
    assert cfg.data.root == str(tmp_path / "faces") and cfg.data.size == 64 and cfg.train.iterations == 9
    assert json.loads(json.dumps(config_to_dict(cfg)))["train"]["iterations"] == 9
    path.write_text("data:\n  rooot: x\n")
    with pytest.raises(InputError, match="data.rooot"):
        load_config(path)


def test_data_root_takes_one_folder_or_a_list(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  root: [faces, /abs/other]\n  holdout: 8\n  holdout_seed: 2\n")
    cfg = load_config(path)
    assert cfg.data.root == [str(tmp_path / "faces"), "/abs/other"] and cfg.data.roots == cfg.data.root
    assert (cfg.data.holdout, cfg.data.holdout_seed) == (8, 2)
    again = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))  # as saved with a checkpoint
    assert again.data == cfg.data
    cfg = load_config(path, ["data.root=[x, 'y z']"])
    assert cfg.data.root == ["x", "y z"]
    cfg = load_config(path, ["data.root=/data/celeba"])  # a plain string stays a string
    assert cfg.data.root == "/data/celeba" and cfg.data.roots == ["/data/celeba"]
    assert load_config(None).data.roots == []
    # Exported with weights: paths relative to the working folder, the loaded config unchanged.
    path.write_text("data:\n  root: [faces, ../elsewhere]\nloss:\n  vgg_weights: random\n"
                    "train:\n  init_weights: w/start.safetensors\n")
    cfg = load_config(path)
    shared = config_to_dict(cfg, relative_to=tmp_path / "repo")
    assert shared["data"]["root"] == ["../faces", "../../elsewhere"]
    assert shared["train"]["init_weights"] == "../w/start.safetensors"
    assert shared["loss"]["vgg_weights"] == "random" and shared["masks"]["root"] is None
    assert cfg.data.root == [str(tmp_path / "faces"), str((tmp_path / "../elsewhere").resolve())]
    for bad in ("data.root=[]", "data.root=[1, 2]", "data.root=[a"):
        with pytest.raises(InputError, match="config key data.root"):
            load_config(None, [bad])


def test_weights_round_trip_and_refusals(tmp_path):
    g = create_model("apfi", "small", cycles=2)
    path = save_weights(g, tmp_path / "g.safetensors", extra={"step": 5})
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["model"] == "apfi" and card["kwargs"]["cycles"] == 2 and len(card["sha256"]) == 64
    loaded, meta = load_weights(path)
    assert loaded.cycles == 2
    for k, v in g.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_weights(path)
    pickle = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match="not a safetensors weights file"):
        load_weights(pickle)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a facefill weights file"):
        load_weights(foreign)


def test_metrics_on_known_images():
    a = torch.rand(2, 3, 32, 32)
    assert torch.equal(psnr(a, a), torch.full((2,), MAX_PSNR))
    torch.testing.assert_close(ssim(a, a), torch.ones(2))
    assert torch.equal(l1_error(a, a), torch.zeros(2))
    b = torch.full((1, 3, 16, 16), 0.5)
    torch.testing.assert_close(psnr(b, b + 0.1), torch.tensor([20.0]), rtol=0, atol=1e-4)
    torch.testing.assert_close(l1_error(b, b + 0.1), torch.tensor([0.1]))


def test_atomic_write_gives_usual_file_mode_and_card_is_not_weights(tmp_path):
    import os

    from facefill.checkpoint import CheckpointError, atomic_write, load_weights, save_weights
    from facefill.models import create_model

    path = atomic_write(tmp_path / "a.bin", lambda tmp: open(tmp, "wb").write(b"x"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    weights = save_weights(create_model("patchgan", "small"), tmp_path / "d.safetensors")
    assert weights.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(CheckpointError, match="weights card"):
        load_weights(tmp_path / "d.json")
