import numpy as np
import pytest
import torch

from unetkit import NormalizationConfig, UNet, load_model, predict, save_checkpoint
from unetkit.checkpoint import CheckpointError, load_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = UNet(2, 3, depth=3, base_features=4, dropout=0.2, batch_norm=True,
                 normalization=NormalizationConfig(mode="fixed", low=10, high=200), class_names=["a", "b", "c"])
    path = save_checkpoint(tmp_path / "m.pt", model, training={"step": 7, "note": "x"})
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.training_info["step"] == 7
    assert not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    image = np.random.default_rng(0).integers(0, 255, (2, 50, 60)).astype(np.uint8)
    np.testing.assert_array_equal(predict(model.eval(), image), predict(loaded, image))


def test_loading_uses_weights_only(tmp_path, monkeypatch):
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    save_checkpoint(tmp_path / "m.pt", UNet(base_features=2))
    load_model(tmp_path / "m.pt")
    assert seen.get("weights_only") is True


def test_refuses_files_that_are_not_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a unetkit checkpoint"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)  # a torch file, but not ours
    with pytest.raises(CheckpointError, match="unetkit-checkpoint"):
        load_model(other)
    # a pickled object that would run code is refused by weights_only loading
    evil = tmp_path / "evil.pt"
    torch.save({"format": "unetkit-checkpoint", "obj": np.random.default_rng(0)}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


def test_checkpoint_with_mismatched_weights_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", UNet(base_features=4))
    payload = torch.load(path, weights_only=True)
    payload["config"]["base_features"] = 8
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_model(tmp_path / "bad.pt")


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "m.pt"
    save_checkpoint(target, UNet(base_features=2))
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(target, UNet(base_features=4))
    assert target.read_bytes() == before  # the old checkpoint survives intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
