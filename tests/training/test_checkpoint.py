"""One checkpoint format, one error: every loader answers a bad file with BundleError.

For each model a checkpoint can hold (the two self-supervised encoders and the bridge's net): a
round trip, a truncated file and a file whose weights belong to another architecture than its
config describes. Small models built in memory; no media.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recsys.errors import BundleError
from training.audio_autoencoder import AudioAEConfig, AudioAutoencoder
from training.av_correspondence import AVConfig, AVCorrespondence
from training.bridge import load_bridge, save_bridge
from training.bridge_config import BridgeConfig
from training.bridge_net import build_net, predict, set_output_norm
from training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

BRIDGE = BridgeConfig(hidden=8, layers=1, cold_share=None, device="cpu")


def _ae(dim: int = 16) -> AudioAutoencoder:
    return AudioAutoencoder(AudioAEConfig(dim=dim, width=16))


def _av(dim: int = 16) -> AVCorrespondence:
    return AVCorrespondence(AVConfig(dim=dim, audio_width=16, vision_width=8, hidden=32))


def _bridge_net(hidden: int = 8):
    torch.manual_seed(0)
    net = build_net(6, 4, dataclasses.replace(BRIDGE, hidden=hidden))
    rng = np.random.default_rng(0)
    net.set_statistics(rng.normal(size=(20, 6)), rng.normal(size=(20, 4)))
    set_output_norm(net, 1.5)  # the calibrated norm is a buffer: it must travel too
    return net.eval()


# Per model: (build, save to path, load from path, a model of another architecture).
LOADERS = {
    "AudioAutoencoder": (
        _ae,
        lambda m, p: save_checkpoint(m, p),
        lambda p: load_checkpoint(p, expected_class="AudioAutoencoder"),
        lambda: _ae(dim=8),
    ),
    "AVCorrespondence": (
        _av,
        lambda m, p: save_checkpoint(m, p),
        lambda p: load_checkpoint(p, expected_class="AVCorrespondence"),
        lambda: _av(dim=8),
    ),
    "BridgeNet": (
        _bridge_net,
        lambda m, p: save_bridge(m, BRIDGE, p),
        lambda p: load_bridge(p)[0],
        lambda: _bridge_net(hidden=5),
    ),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_round_trip(name, tmp_path):
    build, save, load, _ = LOADERS[name]
    model = build()
    loaded = load(save(model, tmp_path / "m.pt"))
    assert type(loaded).__name__ == name and not loaded.training
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_truncated_file(name, tmp_path):
    build, save, load, _ = LOADERS[name]
    path = save(build(), tmp_path / "m.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="cannot read checkpoint"):
        load(tmp_path / "cut.pt")


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_weights_of_another_architecture(name, tmp_path):
    build, save, load, other = LOADERS[name]
    path = save(build(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v.clone() for k, v in other().state_dict().items()}
    torch.save(payload, tmp_path / "mixed.pt")
    with pytest.raises(BundleError, match="do not match"):
        load(tmp_path / "mixed.pt")


def test_bridge_checkpoint_carries_its_settings_and_norm(tmp_path):
    net = _bridge_net()
    config = dataclasses.replace(BRIDGE, lr=3e-3, rank_weight=0.25, seed=4)
    path = save_bridge(net, config, tmp_path / "b.pt")
    assert read_checkpoint(path)["class"] == "BridgeNet"
    loaded, cfg = load_bridge(path)
    assert cfg == config and float(loaded.out_norm) == 1.5
    x = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    np.testing.assert_array_equal(predict(loaded, x), predict(net, x))


def test_bridge_loader_refuses_other_models_and_inconsistent_settings(tmp_path):
    with pytest.raises(BundleError, match="expected a BridgeNet"):
        load_bridge(save_checkpoint(_ae(), tmp_path / "ae.pt"))
    path = save_bridge(_bridge_net(), BRIDGE, tmp_path / "b.pt")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["bridge_config"]["hidden"] = 99  # settings that did not build these weights
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(BundleError, match="disagrees"):
        load_bridge(tmp_path / "other.pt")
    del payload["meta"]["bridge_config"]
    torch.save(payload, tmp_path / "bare.pt")
    with pytest.raises(BundleError, match="training settings"):
        load_bridge(tmp_path / "bare.pt")


def test_bridge_file_of_the_old_layout_says_refit(tmp_path):
    """save_bridge wrote its own layout before the shared format; such a file fails saying what to do."""
    net = _bridge_net()
    old = {"version": 1, "config": dataclasses.asdict(BRIDGE), "in_dim": 6, "out_dim": 4,
           "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(BundleError, match="refit the bridge"):
        load_bridge(tmp_path / "old.pt")
