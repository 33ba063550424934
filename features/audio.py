"""Audio features: a log-mel front end, a fixed-length statistics vector, learned-encoder interface.

Everything here is numpy/scipy, computed from one short-time Fourier transform of a mono waveform:

- :func:`logmel` (T, n_mels) log mel-band energies, 25 ms Hann windows every 10 ms. It is the
  shared front end of the hand-crafted vector and of learned encoders (:class:`AudioEncoder`).
- :func:`audio_stats_vector` one ``(AUDIO_STATS_DIM,)`` float32 vector per clip:
  MFCC mean/std and delta-MFCC std, spectral centroid/bandwidth/rolloff/flatness, zero-crossing rate
  and RMS level mean/std, onset-strength statistics and an autocorrelation tempo estimate.
  :data:`AUDIO_STATS_NAMES` names each dimension.

Units are chosen to keep magnitudes within a few orders of each other (kHz, dB, beats per second),
but the dimensions still differ in scale: standardise per dimension before comparing vectors
(the fusion stage does).
"""

from __future__ import annotations

import functools
import math
from typing import Protocol, runtime_checkable

import numpy as np

from recsys.errors import DataError

#: Rate the statistics vector is computed at; other rates are resampled to it.
SAMPLE_RATE = 16000
N_MELS = 64
N_MFCC = 20
WIN_S = 0.025
HOP_S = 0.010
FMIN = 20.0
#: Floor added to mel energies before the log (a full-scale sine has energy ~1e3 per band).
LOG_EPS = 1e-6
#: Frames more than this many dB below the clip's loudest frame are left out of the spectral
#: statistics (digital silence padding would otherwise dominate them); level statistics keep them.
ACTIVE_DB = 60.0
ROLLOFF = 0.85
TEMPO_MIN_BPM, TEMPO_MAX_BPM, TEMPO_PRIOR_BPM = 30.0, 300.0, 120.0


def _names() -> list[str]:
    names = [f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)]
    # delta means are left out: they telescope to (last - first) / T, ~0 and pure noise
    names += [f"dmfcc{i}_std" for i in range(N_MFCC)]
    for d in ("centroid_khz", "bandwidth_khz", "rolloff_khz", "flatness", "zcr", "rms_db"):
        names += [f"{d}_mean", f"{d}_std"]
    names += ["active_share", "onset_mean", "onset_std", "onset_max", "onset_rate", "tempo_bps", "pulse_clarity"]
    return names


#: Name of each dimension of :func:`audio_stats_vector`.
AUDIO_STATS_NAMES: tuple[str, ...] = tuple(_names())
AUDIO_STATS_DIM: int = len(AUDIO_STATS_NAMES)


# --------------------------------------------------------------------------- front end
def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale (unnormalised peaks of 1).

    Returns
    -------
    (n_mels, n_fft // 2 + 1) float32
    """
    fmax = sr / 2.0 if fmax is None else min(fmax, sr / 2.0)
    if not 0 <= fmin < fmax:
        raise DataError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb.setflags(write=False)
    return fb.astype(np.float32)


def _frame_params(sr: int, hop: int | None, n_fft: int | None) -> tuple[int, int, int]:
    win = int(round(WIN_S * sr))
    hop = int(round(HOP_S * sr)) if hop is None else int(hop)
    n_fft = 1 << max(win - 1, 1).bit_length() if n_fft is None else int(n_fft)
    if hop < 1 or n_fft < 2:
        raise DataError(f"hop must be >= 1 and n_fft >= 2, got hop={hop}, n_fft={n_fft}")
    return min(win, n_fft), hop, n_fft


def _check_wave(wave: np.ndarray, sr: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:  # (channels, samples) or (samples, channels): average to mono
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    if wave.ndim != 1:
        raise DataError(f"wave must be 1-D (n_samples,), got shape {wave.shape}")
    if wave.size == 0:
        raise DataError("wave is empty (0 samples)")
    if not np.isfinite(wave).all():
        raise DataError("wave contains NaN or infinite samples")
    if sr <= 0:
        raise DataError(f"sample rate must be > 0, got {sr}")
    return wave


def _frames(wave: np.ndarray, length: int, hop: int) -> np.ndarray:
    """(T, length) view of centred frames: the signal is zero-padded by length // 2 at both ends."""
    pad = length // 2
    x = np.pad(wave, (pad, pad))
    if x.size < length:
        x = np.pad(x, (0, length - x.size))
    n = 1 + (x.size - length) // hop
    return np.lib.stride_tricks.as_strided(x, shape=(n, length), strides=(x.strides[0] * hop, x.strides[0]))


def power_spectrogram(wave: np.ndarray, sr: int, *, hop: int | None = None, n_fft: int | None = None) -> np.ndarray:
    """Power spectrum of 25 ms Hann-windowed frames.

    Parameters
    ----------
    wave : (n_samples,) float
    sr : int
    hop : int, optional
        Hop in samples (default 10 ms).
    n_fft : int, optional
        FFT size (default the next power of two above the 25 ms window).

    Returns
    -------
    (T, n_fft // 2 + 1) float32
    """
    wave = _check_wave(wave, sr)
    win, hop, n_fft = _frame_params(sr, hop, n_fft)
    frames = _frames(wave, n_fft, hop)
    window = np.zeros(n_fft, dtype=np.float32)
    off = (n_fft - win) // 2
    window[off : off + win] = np.hanning(win + 2)[1:-1]  # periodic-ish, no zero end points
    spec = np.fft.rfft(frames * window, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def logmel(
    wave: np.ndarray,
    sr: int,
    n_mels: int = N_MELS,
    hop: int | None = None,
    *,
    n_fft: int | None = None,
    fmin: float = FMIN,
    fmax: float | None = None,
) -> np.ndarray:
    """Log mel spectrogram, the front end shared by the statistics vector and learned encoders.

    Parameters
    ----------
    wave : (n_samples,) float
        Mono waveform in [-1, 1].
    sr : int
        Sample rate in Hz.
    n_mels : int
        Mel bands (default 64).
    hop : int, optional
        Hop in samples (default 10 ms, i.e. 160 at 16 kHz).
    n_fft : int, optional
        FFT size (default 512 at 16 kHz: the next power of two above the 25 ms window).
    fmin, fmax : float
        Band edges in Hz (default 20 Hz to sr / 2).

    Returns
    -------
    (T, n_mels) float32
        ``log(energy + 1e-6)``; ``T = 1 + n_samples // hop``. Silence gives ``log(1e-6)``, finite.
    """
    power = power_spectrogram(wave, sr, hop=hop, n_fft=n_fft)
    fb = mel_filterbank(int(sr), power.shape[1] * 2 - 2, int(n_mels), float(fmin), fmax)
    return np.log(power @ fb.T + LOG_EPS).astype(np.float32)


def mfcc(logmel_spec: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCCs: orthonormal DCT-II of log mel energies.

    Parameters
    ----------
    logmel_spec : (T, n_mels) float
    n_mfcc : int

    Returns
    -------
    (T, n_mfcc) float32
    """
    from scipy.fft import dct

    return dct(np.asarray(logmel_spec, dtype=np.float64), type=2, norm="ortho", axis=1)[:, :n_mfcc].astype(np.float32)


def delta(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over time, ``sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)``, edges repeated.

    Parameters
    ----------
    x : (T, d) float

    Returns
    -------
    (T, d) float32
    """
    x = np.asarray(x, dtype=np.float32)
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    t = x.shape[0]
    num = sum(n * (padded[width + n : width + n + t] - padded[width - n : width - n + t]) for n in range(1, width + 1))
    return (num / (2.0 * sum(n * n for n in range(1, width + 1)))).astype(np.float32)


def _resample(wave: np.ndarray, sr: int, target: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), int(target))
    return resample_poly(wave, target // g, sr // g).astype(np.float32)


def _mean_std(x: np.ndarray) -> list[float]:
    return [float(np.mean(x)), float(np.std(x))]


def onset_envelope(logmel_spec: np.ndarray) -> np.ndarray:
    """Onset strength: mean over bands of the positive log-mel increase between frames.

    Returns
    -------
    (T,) float32, the first frame 0.
    """
    lm = np.asarray(logmel_spec, dtype=np.float32)
    if lm.shape[0] < 2:
        return np.zeros(lm.shape[0], dtype=np.float32)
    flux = np.maximum(np.diff(lm, axis=0), 0.0).mean(axis=1)
    return np.concatenate([[0.0], flux]).astype(np.float32)


def tempo(onset: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """Tempo from the autocorrelation of the onset envelope.

    The autocorrelation over lags of 30-300 BPM is weighted by a log-normal prior around 120 BPM
    (one octave wide) and the best lag wins.

    Parameters
    ----------
    onset : (T,) float
    frame_rate : float
        Envelope frames per second.

    Returns
    -------
    (beats_per_second, clarity) : (float, float)
        ``clarity`` in [0, 1] is the normalised autocorrelation at that lag; both 0 when the
        envelope is flat or too short.
    """
    x = np.asarray(onset, dtype=np.float64) - float(np.mean(onset)) if len(onset) else np.zeros(0)
    lo = max(int(math.floor(frame_rate * 60.0 / TEMPO_MAX_BPM)), 1)
    hi = min(int(math.ceil(frame_rate * 60.0 / TEMPO_MIN_BPM)), len(x) - 1)
    energy = float(np.dot(x, x))
    if hi <= lo or energy <= 1e-12:
        return 0.0, 0.0
    n = 1 << (2 * len(x) - 1).bit_length()
    spec = np.fft.rfft(x, n)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, n)[: hi + 1] / energy
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * frame_rate / lags
    prior = np.exp(-0.5 * np.log2(bpm / TEMPO_PRIOR_BPM) ** 2)
    best = int(np.argmax(ac[lo : hi + 1] * prior))
    return float(bpm[best] / 60.0), float(np.clip(ac[lo + best], 0.0, 1.0))


def audio_stats_vector(wave: np.ndarray, sr: int) -> np.ndarray:
    """One fixed-length descriptor of a clip (names in :data:`AUDIO_STATS_NAMES`).

    Parameters
    ----------
    wave : (n_samples,) float
        Mono waveform in [-1, 1]; resampled to 16 kHz when ``sr`` differs. Any length >= 1 sample.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (AUDIO_STATS_DIM,) float32
        Finite for any finite input, silence included.

    Raises
    ------
    DataError
        Empty, non-finite or multi-dimensional ``wave``.
    """
    wave = _check_wave(wave, sr)
    if sr != SAMPLE_RATE:
        wave = _resample(wave, int(sr), SAMPLE_RATE)
        if wave.size == 0:
            wave = np.zeros(1, dtype=np.float32)
        sr = SAMPLE_RATE
    win, hop, n_fft = _frame_params(sr, None, None)
    power = power_spectrogram(wave, sr)  # (T, F)
    fb = mel_filterbank(sr, n_fft, N_MELS, FMIN, None)
    lm = np.log(power @ fb.T + LOG_EPS).astype(np.float32)
    t = power.shape[0]

    # level per frame, from the same centred 25 ms frames as the spectrum
    frames = _frames(wave, n_fft, hop)[:t]
    off = (n_fft - win) // 2
    frames = frames[:, off : off + win]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    rms_db = 20.0 * np.log10(rms + 1e-5)
    active = rms_db > max(float(rms_db.max()) - ACTIVE_DB, -100.0 + 1e-9)
    if not active.any():  # digital silence: use every frame
        active = np.ones(t, dtype=bool)
    signs = np.signbit(frames)
    zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)

    # spectral shape on active frames
    p = power[active].astype(np.float64)
    freqs = np.linspace(0.0, sr / 2.0, p.shape[1])
    total = p.sum(axis=1)
    safe = np.maximum(total, 1e-20)
    centroid = (p @ freqs) / safe
    bandwidth = np.sqrt(np.maximum((p @ freqs**2) / safe - centroid**2, 0.0))
    cum = np.cumsum(p, axis=1)
    roll_idx = np.argmax(cum >= ROLLOFF * cum[:, -1:], axis=1)
    rolloff = np.where(total > 1e-20, freqs[roll_idx], 0.0)
    flat = np.exp(np.mean(np.log(p + 1e-20), axis=1)) / (np.mean(p, axis=1) + 1e-20)
    flat = np.where(total > 1e-20, flat, 1.0)  # silence is "flat"

    coeffs = mfcc(lm[active])
    dcoeffs = delta(coeffs)
    onset = onset_envelope(lm)
    frame_rate = sr / hop
    thr = float(onset.mean() + onset.std())
    peaks = (onset[1:-1] > onset[:-2]) & (onset[1:-1] >= onset[2:]) & (onset[1:-1] > thr) if t > 2 else np.zeros(0, bool)
    bps, clarity = tempo(onset, frame_rate)

    vec: list[float] = []
    vec += coeffs.mean(axis=0).tolist() + coeffs.std(axis=0).tolist()
    vec += dcoeffs.std(axis=0).tolist()
    for d in (centroid / 1000.0, bandwidth / 1000.0, rolloff / 1000.0, flat, zcr[active], rms_db):
        vec += _mean_std(d)
    vec += [
        float(active.mean()),
        float(onset.mean()),
        float(onset.std()),
        float(onset.max()),
        float(peaks.sum() / max(t / frame_rate, 1e-3)),
        bps,
        clarity,
    ]
    out = np.asarray(vec, dtype=np.float32)
    if out.shape != (AUDIO_STATS_DIM,):  # a bug, not a user error
        raise RuntimeError(f"audio vector has {out.shape[0]} dims, expected {AUDIO_STATS_DIM}")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


# --------------------------------------------------------------------------- learned encoders
@runtime_checkable
class AudioEncoder(Protocol):
    """A learned audio encoder: log-mel spectrogram in, one fixed-length vector out.

    Implementations (trained in :mod:`training`) share the :func:`logmel` front end so that a
    spectrogram computed once serves every encoder. They may set ``n_mels`` / ``sample_rate``
    attributes when they need other front-end settings than 64 bands at 16 kHz.

    Attributes
    ----------
    name : str
        Stable identifier, used as the feature block name and in provenance.
    dim : int
        Length of the output vector.
    """

    name: str
    dim: int

    def encode(self, logmel: np.ndarray) -> np.ndarray:
        """Encode one clip.

        Parameters
        ----------
        logmel : (T, n_mels) float32
            Output of :func:`logmel`; any ``T >= 1``.

        Returns
        -------
        (dim,) float32
        """
        ...


class LogMelStatsEncoder:
    """The simplest :class:`AudioEncoder`: per-band mean and std of the log-mel spectrogram.

    A baseline and the reference for the interface; nothing is learned.
    """

    def __init__(self, n_mels: int = N_MELS) -> None:
        self.n_mels = int(n_mels)
        self.name = f"logmel_stats{self.n_mels}"
        self.dim = 2 * self.n_mels

    def encode(self, logmel: np.ndarray) -> np.ndarray:
        lm = np.asarray(logmel, dtype=np.float32)
        if lm.ndim != 2 or lm.shape[1] != self.n_mels or lm.shape[0] < 1:
            raise DataError(f"{self.name} expects a (T >= 1, {self.n_mels}) log-mel, got shape {lm.shape}")
        return np.concatenate([lm.mean(axis=0), lm.std(axis=0)]).astype(np.float32)


def encode_wave(encoder: AudioEncoder, wave: np.ndarray, sr: int) -> np.ndarray:
    """Run an :class:`AudioEncoder` on a waveform through the shared front end.

    The wave is resampled to the encoder's ``sample_rate`` (default 16 kHz) and turned into a
    log-mel with its ``n_mels`` (default 64); the output is checked for shape and finiteness.

    Returns
    -------
    (encoder.dim,) float32
    """
    wave = _check_wave(wave, sr)
    target = int(getattr(encoder, "sample_rate", SAMPLE_RATE))
    if sr != target:
        wave = _resample(wave, int(sr), target)
    out = np.asarray(encoder.encode(logmel(wave, target, int(getattr(encoder, "n_mels", N_MELS)))), dtype=np.float32)
    if out.shape != (encoder.dim,):
        raise RuntimeError(f"encoder {encoder.name!r} returned shape {out.shape}, declared dim {encoder.dim}")
    if not np.isfinite(out).all():
        raise RuntimeError(f"encoder {encoder.name!r} returned NaN or infinite values")
    return out
