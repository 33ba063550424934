"""The one device rule (features.device) and the places that use it."""

from __future__ import annotations

import pytest
import torch

from features.device import check_device, resolve_device
from features.extract import ExtractorConfig
from recsys.errors import ConfigError
from training.bridge_config import BridgeConfig
from training.trainer import TrainerConfig

NO_CUDA = not torch.cuda.is_available()


def test_forms():
    assert check_device(None) == "auto"
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_device(ok) == ok
    for bad in ("tpu", "CUDA", "cuda:", "cuda:x", "cuda0", "", 0, "mps"):
        with pytest.raises(ConfigError, match="device must be"):
            check_device(bad)


def test_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == expected and resolve_device(None) == expected
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="checks a machine without CUDA")
def test_cuda_request_without_cuda():
    for req in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device(req)


@pytest.mark.skipif(NO_CUDA, reason="needs a GPU")
def test_gpu_index_this_machine_lacks():
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_every_config_checks_the_same_forms():
    for make in (lambda d: ExtractorConfig(device=d), lambda d: TrainerConfig(device=d),
                 lambda d: BridgeConfig(device=d).validate()):
        make("cuda:1")  # the form is fine; whether this machine has it is asked when work starts
        with pytest.raises(ConfigError, match="device must be"):
            make("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="checks a machine without CUDA")
def test_every_torch_entry_point_refuses_cuda_without_it(tmp_path):
    """Feature extraction, the trainer, the bridge and checkpoint loading: one rule, one error."""
    import numpy as np

    from features.video import load_backbone
    from training.bridge import train_bridge
    from training.checkpoint import load_checkpoint, save_checkpoint
    from training.audio_autoencoder import AudioAEConfig, AudioAutoencoder
    from training.trainer import train

    path = save_checkpoint(AudioAutoencoder(AudioAEConfig(dim=8, width=8)), tmp_path / "ae.pt")
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    calls = [
        lambda: load_backbone("resnet18", "none", "cuda"),
        lambda: train(torch.nn.Linear(1, 1), None, None, TrainerConfig(device="cuda"), log=None),
        lambda: train_bridge(x, x, np.ones(6, bool), BridgeConfig(rank_weight=0.0, device="cuda")),
        lambda: load_checkpoint(path, device="cuda"),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="CUDA is not available here"):
            call()
