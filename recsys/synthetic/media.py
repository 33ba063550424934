"""The demo items' pictures and sounds, and their encoding into MP4 files (H.264 + AAC) with PyAV.

Frames and samples are rendered from the parameters :func:`~recsys.synthetic.world.item_specs`
draws; :func:`write_media` renders and encodes a list of items in worker processes (``spawn``),
so everything here must stay importable and picklable. :func:`write_clip` makes a tiny clip for
tests and examples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import AvrecError

_SENSOR_NOISE = 1.0  # per-frame pixel noise (8-bit levels) on top of each item's fixed grain


def media_seed(seed: int, index: int) -> int:
    """The rendering seed of item ``index`` in the catalog of ``seed``: independent of every other draw."""
    return int(np.random.SeedSequence([seed, 7919, index]).generate_state(1)[0])


def render_frames(video: dict[str, Any], n_frames: int, width: int, height: int, seed: int) -> np.ndarray:
    """Frames of one item's picture.

    Returns
    -------
    frames : (n_frames, height, width, 3) uint8, RGB
    """
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = video["stripe_angle"]
    proj = (xx * np.cos(ang) + yy * np.sin(ang)) / width
    hue2 = (video["hue"] + 90.0) % 180.0  # shapes in the complementary hue
    n_shapes, speed = video["n_shapes"], video["speed"]
    pos = rng.uniform([0, 0], [width, height], (n_shapes, 2))
    direction = rng.uniform(0, 2 * np.pi, n_shapes)
    vel = np.stack([np.cos(direction), np.sin(direction)], 1) * speed
    radius = rng.uniform(0.1, 0.2, n_shapes) * height
    hsv = np.empty((height, width, 3), dtype=np.uint8)
    hsv[..., 0] = np.uint8(round(video["hue"]) % 180)
    # A fixed grain per item plus a little sensor noise: texture without making every frame a new
    # picture for the encoder (fresh full-strength noise per frame tripled file size and time).
    grain = rng.normal(0, video["noise"], (height, width))
    out = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for f in range(n_frames):
        phase = 2 * np.pi * f * speed * 0.05
        stripes = np.sin(2 * np.pi * video["stripe_freq"] * proj + phase)
        v = video["val"] * (0.78 + 0.22 * stripes) + grain + rng.normal(0, _SENSOR_NOISE, (height, width))
        hsv[..., 1] = np.uint8(min(255, video["sat"]))
        hsv[..., 2] = np.clip(v, 0, 255).astype(np.uint8)
        for s in range(n_shapes):
            x, y = pos[s]
            colour = (int(round(hue2)) % 180, int(min(255, video["sat"])), 235)
            rr = int(radius[s])
            if video["shape_kind"] == 0:
                cv2.circle(hsv, (int(x), int(y)), rr, colour, -1, lineType=cv2.LINE_AA)
            else:
                cv2.rectangle(hsv, (int(x) - rr, int(y) - rr), (int(x) + rr, int(y) + rr), colour, -1)
        out[f] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        hsv[..., 0] = np.uint8(round(video["hue"]) % 180)  # shapes overwrote the hue plane
        pos += vel
        for d, lim in ((0, width), (1, height)):  # bounce off the borders
            hit = (pos[:, d] < 0) | (pos[:, d] > lim)
            vel[hit, d] *= -1
            pos[:, d] = np.clip(pos[:, d], 0, lim)
    return out


def render_audio(audio: dict[str, Any], duration_s: float, sample_rate: int, seed: int) -> np.ndarray:
    """One item's sound: harmonic notes at a tempo, tremolo, coloured noise.

    Returns
    -------
    samples : (n,) float32 in [-1, 1], RMS about 0.15
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    scale = (0, 2, 4, 7, 9, 12) if audio["scale"] == 0 else (0, 3, 5, 7, 10, 12)
    note_len = 60.0 / audio["tempo_bpm"]
    signal = np.zeros(n)
    nyquist = sample_rate / 2
    k = np.arange(1, 11)
    if audio["odd_only"]:
        k = k[k % 2 == 1]
    amps = 1.0 / k ** audio["harm_decay"]
    onset = 0.0
    while onset < duration_s:
        a, b = int(onset * sample_rate), min(n, int((onset + note_len) * sample_rate))
        f0 = audio["f0_hz"] * 2 ** (scale[rng.integers(len(scale))] / 12.0)
        tt = t[a:b] - onset
        keep = k * f0 < nyquist * 0.9
        tone = (amps[keep, None] * np.sin(2 * np.pi * f0 * k[keep, None] * tt[None, :])).sum(0)
        env = np.minimum(1.0, tt / 0.008) * np.exp(-audio["note_decay"] * tt)
        signal[a:b] += tone * env * rng.uniform(0.7, 1.0)
        onset += note_len
    signal *= 0.75 + 0.25 * np.sin(2 * np.pi * audio["tremolo_hz"] * t)
    signal /= np.sqrt(np.mean(signal**2)) + 1e-9
    # Coloured noise: shape white noise's spectrum by 1/f^(beta/2) in amplitude.
    spec = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec *= 1.0 / np.maximum(freqs, 20.0) ** (audio["noise_beta"] / 2)
    noise = np.fft.irfft(spec, n)
    noise /= np.sqrt(np.mean(noise**2)) + 1e-9
    out = signal + audio["noise_level"] * noise
    out *= 0.15 / (np.sqrt(np.mean(out**2)) + 1e-9)
    fade = min(n // 2, int(0.01 * sample_rate))  # no click at either end
    ramp = np.linspace(0.0, 1.0, fade)
    out[:fade] *= ramp
    out[n - fade:] *= ramp[::-1]
    return np.clip(out, -0.95, 0.95).astype(np.float32)


def encode_mp4(path: str | Path, frames: np.ndarray, fps: int, samples: np.ndarray, sample_rate: int) -> None:
    """Mux RGB frames (H.264, yuv420p) and mono float samples (AAC) into an MP4 with PyAV.

    Parameters
    ----------
    frames : (n_frames, height, width, 3) uint8, RGB
    samples : (n,) float32
    """
    import av
    import cv2

    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        v = container.add_stream("libx264", rate=fps)
        v.width, v.height = frames.shape[2], frames.shape[1]
        v.pix_fmt = "yuv420p"
        # Bit-reproducible output: one thread per encoder (files are encoded in parallel anyway), and
        # x264's C code paths: its AVX-512 kernels read uninitialised bytes past the end of small
        # frames, so the bitstream changed with the heap's contents; x264's output also differs
        # between SIMD levels, so only asm=0 gives the same bytes on every machine. It costs ~3x
        # x264 time (~30 ms CPU per 3 s item with "veryfast"; "superfast" saves 13 ms but doubles size).
        v.options = {"crf": "20", "preset": "veryfast", "threads": "1", "x264-params": "asm=0"}
        a = container.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
        a.bit_rate = 64_000
        a.options = {"aac_coder": "fast"}  # 4x faster than the default search, plenty for test tones
        for i, img in enumerate(frames):
            # Converted here (BT.601, limited range: what decoders assume for untagged video) so the
            # encoder takes the planes as they are.
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            frame.pts = i
            for packet in v.encode(frame):
                container.mux(packet)
        for packet in v.encode():
            container.mux(packet)
        chunk = 1024  # the AAC frame size
        for start in range(0, len(samples), chunk):
            block = samples[start:start + chunk]
            frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in a.encode(frame):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)


def write_clip(path: str | Path, seed: int = 0, seconds: float = 1.0, w: int = 64, h: int = 48, fps: int = 12,
               sr: int = 16000) -> Path:
    """A tiny H.264 + AAC MP4 whose colours and tone depend on ``seed`` (for tests and examples).

    Frames: a seeded base colour drifting over time with a seeded top-left quadrant; sound: a sine at
    ``220 + 110 * seed`` Hz.
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=3)
    frames = np.empty((int(seconds * fps), h, w, 3), np.uint8)
    for i in range(len(frames)):
        frames[i] = (base + 9 * i) % 255
        frames[i, : h // 2, : w // 2] = rng.integers(0, 255, size=3)
    t = np.arange(int(seconds * sr)) / sr
    encode_mp4(path, frames, fps, (0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t)).astype(np.float32), sr)
    return Path(path)


def _write_item_media(task: dict[str, Any]) -> tuple[str, str | None]:
    """Render and encode one item (the pool's unit of work). Returns ``(path, error or None)``."""
    try:
        n_frames = max(1, int(round(task["duration_s"] * task["fps"])))
        frames = render_frames(task["video"], n_frames, task["width"], task["height"], task["seed"])
        samples = render_audio(task["audio"], task["duration_s"], task["sample_rate"], task["seed"] + 1)
        tmp = Path(task["path"]).with_suffix(".part.mp4")
        encode_mp4(tmp, frames, task["fps"], samples, task["sample_rate"])
        os.replace(tmp, task["path"])
    except Exception as exc:  # reported by the parent; a plain string crosses process borders safely
        return task["path"], f"{type(exc).__name__}: {exc}"
    return task["path"], None


def write_media(tasks: list[dict[str, Any]], workers: int) -> None:
    """Render and encode every task (one item's spec, seed, size and target path) with ``workers`` processes.

    Raises
    ------
    AvrecError
        Naming the first file that could not be written.
    """
    if workers <= 1 or len(tasks) <= 1:
        results = map(_write_item_media, tasks)
        _raise_first_failure(results)
        return
    import multiprocessing as mp

    # spawn, not fork: the parent may hold threads (polars, BLAS), and spawn works everywhere.
    ctx = mp.get_context("spawn")
    chunk = max(1, len(tasks) // (workers * 4))
    with ctx.Pool(min(workers, len(tasks))) as pool:
        _raise_first_failure(pool.imap_unordered(_write_item_media, tasks, chunksize=chunk))


def _raise_first_failure(results) -> None:
    for path, error in results:
        if error is not None:
            raise AvrecError(
                f"{path}: could not write demo media ({error}); the demo needs PyAV built with the "
                "libx264 and aac encoders (the PyPI wheels of `av` have both)"
            )
