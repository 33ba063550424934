"""Video features: hand-crafted descriptors and the torchvision backbone block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.video import (
    VIDEO_DESC_DIM,
    VIDEO_DESC_NAMES,
    backbone_dim,
    cnn_vector,
    frame_embeddings,
    temporal_pool,
    video_descriptor_vector,
)
from recsys.errors import ConfigError, DataError

IDX = {n: i for i, n in enumerate(VIDEO_DESC_NAMES)}


def red_static(n: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = 200
    return frames


def blue_moving(n: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 2] = 60
    for i in range(n):  # a bright blue square crossing the frame
        x = 4 + 9 * i
        frames[i, 10:30, x : x + 16, 2] = 255
    return frames


def textured(n: int = 4, h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- descriptors
def test_descriptor_names_match_dim() -> None:
    assert len(VIDEO_DESC_NAMES) == VIDEO_DESC_DIM == len(set(VIDEO_DESC_NAMES))


def test_descriptors_tell_red_static_from_blue_moving() -> None:
    ts = np.arange(6, dtype=float)
    red = video_descriptor_vector(red_static(), ts)
    blue = video_descriptor_vector(blue_moving(), ts)
    for v in (red, blue):
        assert v.shape == (VIDEO_DESC_DIM,) and v.dtype == np.float32 and np.isfinite(v).all()
        assert v[:64].sum() == pytest.approx(1.0, abs=1e-5)
    assert red[IDX["hsv_h0_s3"]] == pytest.approx(1.0)  # all pixels: red hue, full saturation
    assert blue[IDX["hsv_h10_s3"]] > 0.9  # blue hue (240 deg = bin 10 of 16)
    assert red[IDX["motion_mean"]] == 0.0 and blue[IDX["motion_mean"]] > 0.005
    assert red[IDX["edges_mean"]] == 0.0 and blue[IDX["edges_mean"]] > 0.0
    assert blue[IDX["brightness_mean"]] < red[IDX["brightness_mean"]]


def test_cut_rate_counts_scene_changes() -> None:
    frames = np.concatenate([red_static(3), blue_moving(3)])
    v = video_descriptor_vector(frames, np.arange(6.0))
    assert v[IDX["cut_rate"]] == pytest.approx(1 / 5)
    assert video_descriptor_vector(red_static(1))[IDX["cut_rate"]] == 0.0


def test_descriptor_input_checks() -> None:
    with pytest.raises(DataError):
        video_descriptor_vector(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(DataError):
        video_descriptor_vector(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError):
        video_descriptor_vector(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(DataError):
        video_descriptor_vector(np.zeros((2, 8, 8, 3), np.uint8), np.array([0.0]))


# --------------------------------------------------------------------------- CNN
def test_backbone_dims_table_matches_shape_only_pass() -> None:
    import features.video as fv

    for name in ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"):
        assert backbone_dim(name, known=False) == fv._DIMS[name], name
    assert backbone_dim("resnet18") == 512
    assert backbone_dim("resnext50_32x4d") == 2048  # not in the table: computed
    with pytest.raises(ConfigError, match="unknown torchvision backbone"):
        backbone_dim("resnet_does_not_exist")


def test_random_weights_are_reproducible() -> None:
    import features.video as fv

    frames = textured()
    a = cnn_vector(frames, device="cpu", torch_threads=1)
    b = cnn_vector(frames, device="cpu", torch_threads=1)
    assert a.shape == (1024,) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    fv._MODELS.clear()  # rebuild the model: the fixed seed gives the same weights
    c = cnn_vector(frames, device="cpu", torch_threads=1)
    assert np.allclose(a, c, rtol=1e-5, atol=1e-6)
    pooled, per_frame = cnn_vector(frames, device="cpu", torch_threads=1, keep_frames=True)
    assert per_frame.shape == (4, 512)
    assert np.allclose(pooled, temporal_pool(per_frame))
    assert np.allclose(pooled[:512], per_frame.mean(axis=0)) and np.allclose(pooled[512:], per_frame.max(axis=0))
    assert not np.allclose(per_frame[0], per_frame[1])  # frames differ, features differ


def test_random_weights_do_not_depend_on_process_state() -> None:
    """weights='none' is seeded in isolation: the global RNG neither changes it nor is changed by it.

    The checksums pin the initialisation of this torch version; if they move (a torch upgrade),
    vectors cached under the same ExtractorConfig.key() are stale: bump EXTRACTOR_VERSION.
    """
    import torch

    import features.video as fv

    frames = textured(n=2, h=40, w=40)
    fv._MODELS.clear()
    torch.manual_seed(999)
    torch.rand(1000)
    a = cnn_vector(frames, device="cpu", torch_threads=1, frame_size=32)
    after = torch.rand(3)
    torch.manual_seed(999)
    torch.rand(1000)
    assert torch.equal(after, torch.rand(3))  # building the model did not consume the global RNG
    fv._MODELS.clear()
    torch.manual_seed(12345)
    b = cnn_vector(frames, device="cpu", torch_threads=1, frame_size=32)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
    model, _ = fv.load_backbone("resnet18", "none", "cpu")
    assert float(model.conv1.weight.double().sum()) == pytest.approx(-5.018750041808971, rel=1e-9)
    assert float(model.layer4[1].conv2.weight.double().abs().sum()) == pytest.approx(39206.78250613615, rel=1e-9)


def test_state_dict_file_loads_by_path(tmp_path: Path) -> None:
    import torch
    import torchvision

    torch.manual_seed(123)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_random.pth"
    torch.save(model.state_dict(), path)
    frames = textured(n=3)
    from_file = cnn_vector(frames, weights=str(path), device="cpu", torch_threads=1)
    assert from_file.shape == (1024,)
    assert not np.allclose(from_file, cnn_vector(frames, device="cpu", torch_threads=1))  # other weights
    # the same as running the saved model by hand
    model.fc = torch.nn.Identity()
    model.eval()
    per_frame = frame_embeddings(frames, weights=str(path), device="cpu", torch_threads=1)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = torch.nn.functional.interpolate(x, size=(112, 149), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.allclose(per_frame, expected, rtol=1e-4, atol=1e-5)
    # a headless file (no fc.*) also loads; a file for another architecture does not
    headless = tmp_path / "trunk.pt"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, headless)
    assert np.allclose(cnn_vector(frames, weights=str(headless), device="cpu"), from_file, atol=1e-5)
    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), other)
    with pytest.raises(ConfigError, match="does not fit resnet18"):
        cnn_vector(frames, weights=str(other), device="cpu")
    with pytest.raises(ConfigError, match="not found"):
        cnn_vector(frames, weights=str(tmp_path / "missing.pth"), device="cpu")


def test_weights_names_fail_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import urllib.error

    import torch.hub

    with pytest.raises(ConfigError, match="unknown weights 'NOPE'"):
        cnn_vector(textured(n=1), weights="NOPE", device="cpu")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # never find a cached file
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match="could not load torchvision weights resnet18/IMAGENET1K_V1"):
        cnn_vector(textured(n=1), weights="IMAGENET1K_V1", device="cpu")


def test_device_and_frame_checks() -> None:
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            cnn_vector(textured(n=1), device="cuda")
    with pytest.raises(ConfigError, match="frame_size"):
        cnn_vector(textured(n=1), frame_size=8, device="cpu")
    with pytest.raises(DataError):
        cnn_vector(np.zeros((0, 8, 8, 3), np.uint8), device="cpu")
