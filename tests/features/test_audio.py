"""Audio features: log-mel front end, statistics vector, encoder interface, signal on ESC-50."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from features.audio import (
    AUDIO_STATS_DIM,
    AUDIO_STATS_NAMES,
    AudioEncoder,
    LogMelStatsEncoder,
    audio_stats_vector,
    encode_wave,
    logmel,
    mel_filterbank,
)
from recsys.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SR = 16000
IDX = {n: i for i, n in enumerate(AUDIO_STATS_NAMES)}


@pytest.fixture
def esc50_dir() -> Path:
    d = SHARED / "esc50"
    if not (d / "meta.csv").is_file():
        pytest.skip(f"ESC-50 subset not found at {d}")
    return d


def sine(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_names_match_dim() -> None:
    assert len(AUDIO_STATS_NAMES) == AUDIO_STATS_DIM == len(set(AUDIO_STATS_NAMES))


def test_logmel_shape_and_values() -> None:
    lm = logmel(sine(440.0), SR)
    assert lm.shape == (101, 64) and lm.dtype == np.float32
    assert logmel(sine(440.0), SR, n_mels=40, hop=320).shape == (51, 40)
    # the 440 Hz band is the loudest one
    fb = mel_filterbank(SR, 512, 64)
    assert int(np.argmax(lm[50])) == int(np.argmax(fb[:, round(440 / (SR / 512))]))
    silent = logmel(np.zeros(SR, np.float32), SR)
    assert np.isfinite(silent).all() and np.allclose(silent, np.log(1e-6))
    assert logmel(np.zeros(1, np.float32), SR).shape == (1, 64)


def test_centroid_orders_pitch() -> None:
    low = audio_stats_vector(sine(440.0), SR)
    high = audio_stats_vector(sine(1760.0), SR)
    c = IDX["centroid_khz_mean"]
    assert low[c] == pytest.approx(0.44, abs=0.05)
    assert high[c] == pytest.approx(1.76, abs=0.05)
    assert high[IDX["zcr_mean"]] > 3 * low[IDX["zcr_mean"]]
    assert high[IDX["rolloff_khz_mean"]] > low[IDX["rolloff_khz_mean"]]


def test_noise_is_flatter_than_a_tone() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    f = IDX["flatness_mean"]
    assert audio_stats_vector(noise, SR)[f] > 10 * audio_stats_vector(sine(440.0), SR)[f]


def test_tempo_of_a_click_train() -> None:
    wave = np.zeros(6 * SR, np.float32)
    for start in np.arange(0, 6 * SR, SR // 2):  # a click every 0.5 s: 120 BPM
        wave[start : start + 200] = np.hanning(200) * np.sin(np.arange(200) * 0.9)
    v = audio_stats_vector(wave, SR)
    assert v[IDX["tempo_bps"]] == pytest.approx(2.0, rel=0.05)
    assert v[IDX["pulse_clarity"]] > 0.5
    assert v[IDX["onset_rate"]] == pytest.approx(2.0, rel=0.25)


@pytest.mark.parametrize("n_samples", [0 + 1, 100, 400, SR // 2, 3 * SR])
def test_silence_and_any_length_give_finite_fixed_size(n_samples: int) -> None:
    for wave in (np.zeros(n_samples, np.float32), np.full(n_samples, 0.1, np.float32)):
        v = audio_stats_vector(wave, SR)
        assert v.shape == (AUDIO_STATS_DIM,) and v.dtype == np.float32
        assert np.isfinite(v).all()


def test_other_sample_rates_are_resampled() -> None:
    v16 = audio_stats_vector(sine(1000.0, sr=16000), 16000)
    v44 = audio_stats_vector(sine(1000.0, sr=44100), 44100)
    assert v44.shape == (AUDIO_STATS_DIM,)
    c = IDX["centroid_khz_mean"]
    assert v44[c] == pytest.approx(v16[c], abs=0.02)
    stereo = np.stack([sine(1000.0), sine(1000.0)])
    assert np.allclose(audio_stats_vector(stereo, SR), v16, atol=1e-4)


def test_bad_waves_raise() -> None:
    with pytest.raises(DataError, match="empty"):
        audio_stats_vector(np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match="NaN"):
        audio_stats_vector(np.array([0.0, np.nan], np.float32), SR)
    with pytest.raises(DataError, match="1-D"):
        audio_stats_vector(np.zeros((2, 2, 2), np.float32), SR)


def test_encoder_interface() -> None:
    enc = LogMelStatsEncoder()
    assert isinstance(enc, AudioEncoder)
    out = encode_wave(enc, sine(440.0, sr=22050), 22050)
    assert out.shape == (enc.dim,) == (128,) and out.dtype == np.float32
    # band means agree below ~4 kHz (near Nyquist only resampling residue sits on the log floor)
    assert np.allclose(out[:40], enc.encode(logmel(sine(440.0), SR))[:40], atol=0.3)
    with pytest.raises(DataError):
        enc.encode(np.zeros((10, 40), np.float32))

    class Broken:
        name, dim = "broken", 3

        def encode(self, logmel: np.ndarray) -> np.ndarray:
            return np.zeros(4, np.float32)

    assert isinstance(Broken(), AudioEncoder)
    with pytest.raises(RuntimeError, match="declared dim 3"):
        encode_wave(Broken(), sine(440.0), SR)


@pytest.mark.shared
def test_esc50_nearest_neighbour_accuracy(esc50_dir: Path) -> None:
    """Leave-one-out 1-NN (cosine, standardised) over 100 clips of 50 classes: chance is 2 %."""
    from features.audio_decode import decode_audio

    with (esc50_dir / "meta.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.stack([audio_stats_vector(decode_audio(esc50_dir / "audio" / r["filename"]).wave, SR) for r in rows])
    y = np.array([int(r["target"]) for r in rows])
    assert np.isfinite(x).all()
    z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    acc = float(np.mean(y[np.argmax(sim, axis=1)] == y))
    print(f"\nESC-50 subset ({len(y)} clips, {len(set(y))} classes) leave-one-out 1-NN accuracy: {acc:.2%}")
    assert acc >= 0.15  # measured 31 %; chance 2 %
