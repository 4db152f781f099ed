"""Pre-encoded media for synthetic participants: generated once, cached on disk, replayed.

A load generator that encoded live would spend its CPU on libvpx instead of on the wire, so
every synthetic participant replays the same few seconds of media: Opus frames of a tone (and
of silence) with their RFC 6464 audio levels, and three VP8 simulcast layers of a moving
texture, lowest resolution first, like the web client's (``l``/``m``/``h``: 320×180 at
150 kbit/s, 640×360 at 500 kbit/s, 1280×720 at 1.5 Mbit/s). Each video layer starts with its
only key frame, so a replay restarted at frame 0 is decodable (that is how a PLI is answered).

The cache file format is ours (a small length-prefixed binary, below) rather than pickle, so a
file in the cache directory can never run code when loaded.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

FPS = 30
AUDIO_FRAME_MS = 20
LOOP_SECONDS = 4
CACHE_VERSION = 2  # bump when the generated media changes
VP8_MAX_PAYLOAD = 1150  # leaves room for RTP header, extensions and SRTP tag under 1200


@dataclass(frozen=True, slots=True)
class Layer:
    rid: str
    width: int
    height: int
    bitrate: int


LAYERS = (
    Layer("l", 320, 180, 150_000),
    Layer("m", 640, 360, 500_000),
    Layer("h", 1280, 720, 1_500_000),
)


@dataclass(frozen=True, slots=True)
class VideoFrame:
    keyframe: bool
    chunks: tuple[bytes, ...]  # VP8 payload pieces, one RTP packet each (descriptor added later)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    level: int  # RFC 6464 §3: -dBov, 0 (loud) .. 127 (silence)
    payload: bytes


@dataclass(frozen=True, slots=True)
class MediaCache:
    speech: tuple[AudioFrame, ...]  # a tone, 20 ms each
    silence: tuple[AudioFrame, ...]
    layers: tuple[tuple[VideoFrame, ...], ...]  # per Layer, lowest first, FPS frames/second

    def video_bitrate(self, layer: int) -> float:
        frames = self.layers[layer]
        size = sum(len(c) for f in frames for c in f.chunks)
        return 8 * size * FPS / max(len(frames), 1)


# -- packetisation (pure) ---------------------------------------------------------------------


def split_frame(frame: bytes, max_payload: int = VP8_MAX_PAYLOAD) -> tuple[bytes, ...]:
    """Cut an encoded frame into nearly equal pieces of at most ``max_payload`` bytes (as
    libwebrtc does, so no tiny last packet)."""
    if not frame:
        raise ValueError("empty frame")
    count = math.ceil(len(frame) / max_payload)
    size = math.ceil(len(frame) / count)
    return tuple(frame[i : i + size] for i in range(0, len(frame), size))


def vp8_descriptor(start: bool, picture_id: int, tl0picidx: int) -> bytes:
    """RFC 7741 §4.2 payload descriptor: X=1, S on a frame's first packet, PID 0, a 15-bit
    PictureID (I=1, M=1) and TL0PICIDX (L=1); every frame is on temporal layer 0."""
    pid = picture_id & 0x7FFF
    return bytes((0x90 if start else 0x80, 0xC0, 0x80 | pid >> 8, pid & 0xFF, tl0picidx & 0xFF))


def audio_level_dbov(samples: list[float] | tuple[float, ...], full_scale: float = 32768.0
                     ) -> int:
    """RFC 6464 §3 level of 16-bit PCM: -dBov of the RMS, clamped to 0..127."""
    if not samples:
        return 127
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    if rms <= 0:
        return 127
    return max(0, min(127, round(-20 * math.log10(rms / full_scale))))


# -- file format (pure) -----------------------------------------------------------------------

_MAGIC = b"TLMC1\n"
_HEAD = struct.Struct("!BBBBI")  # kind, layer, keyframe/level, chunk count, total length
_KIND_SPEECH, _KIND_SILENCE, _KIND_VIDEO = 1, 2, 3


def serialize(cache: MediaCache) -> bytes:
    out = [_MAGIC]
    for kind, frames in ((_KIND_SPEECH, cache.speech), (_KIND_SILENCE, cache.silence)):
        for a in frames:
            out += [_HEAD.pack(kind, 0, a.level, 1, len(a.payload)), a.payload]
    for index, layer in enumerate(cache.layers):
        for v in layer:
            lengths = b"".join(struct.pack("!H", len(c)) for c in v.chunks)
            body = lengths + b"".join(v.chunks)
            out += [_HEAD.pack(_KIND_VIDEO, index, int(v.keyframe), len(v.chunks), len(body)),
                    body]
    return b"".join(out)


def deserialize(data: bytes) -> MediaCache:
    """Inverse of :func:`serialize`; raises ValueError on anything malformed."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a media cache file")
    speech: list[AudioFrame] = []
    silence: list[AudioFrame] = []
    layers: list[list[VideoFrame]] = [[] for _ in LAYERS]
    pos = len(_MAGIC)
    while pos < len(data):
        if pos + _HEAD.size > len(data):
            raise ValueError("truncated record header")
        kind, layer, flag, count, length = _HEAD.unpack_from(data, pos)
        pos += _HEAD.size
        body = data[pos : pos + length]
        if len(body) != length:
            raise ValueError("truncated record")
        pos += length
        if kind in (_KIND_SPEECH, _KIND_SILENCE):
            (speech if kind == _KIND_SPEECH else silence).append(AudioFrame(flag, body))
        elif kind == _KIND_VIDEO and layer < len(layers) and 2 * count <= length:
            sizes = struct.unpack_from(f"!{count}H", body)
            if 2 * count + sum(sizes) != length:
                raise ValueError("video record lengths do not add up")
            chunks, at = [], 2 * count
            for size in sizes:
                chunks.append(body[at : at + size])
                at += size
            layers[layer].append(VideoFrame(bool(flag), tuple(chunks)))
        else:
            raise ValueError(f"bad record kind {kind} / layer {layer}")
    if not speech or not silence or not all(layers):
        raise ValueError("media cache is incomplete")
    return MediaCache(tuple(speech), tuple(silence), tuple(tuple(x) for x in layers))


# -- generation (PyAV: libopus, libvpx) ---------------------------------------------------------


def _encode_audio(tone: bool, seconds: int) -> tuple[AudioFrame, ...]:
    import av
    import numpy as np

    rate, samples = 48000, 48000 * AUDIO_FRAME_MS // 1000
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = rate
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = Fraction(1, rate)
    out: list[AudioFrame] = []
    levels: list[int] = []
    for i in range(seconds * 1000 // AUDIO_FRAME_MS):
        t = (np.arange(samples) + i * samples) / rate
        # syllable-like bursts (a steady tone looks like noise to a speaker detector)
        amp = 9000.0 * (0.1 + 0.9 * abs(math.sin(i * 0.7))) if tone and i % 25 < 18 else 0.0
        pcm = (np.sin(2 * math.pi * 440.0 * t) * amp).astype(np.int16)
        levels.append(audio_level_dbov(pcm.astype(float).tolist()))
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = i * samples
        frame.time_base = Fraction(1, rate)
        for packet in codec.encode(frame):
            out.append(AudioFrame(levels[len(out)], bytes(packet)))
    for packet in codec.encode(None):
        if len(out) < len(levels):
            out.append(AudioFrame(levels[len(out)], bytes(packet)))
    return tuple(out)


def _encode_video(layer: Layer, seconds: int, seed: int = 7) -> tuple[VideoFrame, ...]:
    """Encode one layer, re-encoding with a corrected target (at most 4 tries) until the
    average bit rate is within 15% of the layer's: libvpx's rate control on synthetic
    content over- or undershoots by up to 2× from run to run."""
    rate = layer.bitrate
    best: tuple[VideoFrame, ...] = ()
    for _ in range(4):
        frames = _encode_video_once(layer, seconds, seed, rate)
        size = sum(len(c) for f in frames for c in f.chunks)
        actual = 8 * size * FPS / len(frames)
        if not best or abs(actual - layer.bitrate) < abs(_bitrate(best) - layer.bitrate):
            best = frames
        if abs(actual / layer.bitrate - 1) <= 0.15:
            break
        rate = int(rate * layer.bitrate / actual)
    return best


def _bitrate(frames: tuple[VideoFrame, ...]) -> float:
    return 8 * sum(len(c) for f in frames for c in f.chunks) * FPS / max(len(frames), 1)


def _encode_video_once(layer: Layer, seconds: int, seed: int, rate: int
                       ) -> tuple[VideoFrame, ...]:
    import av
    import numpy as np

    w, h = layer.width, layer.height
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
    codec.thread_count = 1  # steadier rate control
    codec.bit_rate = rate
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS)
    codec.gop_size = 100_000  # one key frame, at the start of the loop
    codec.qmin, codec.qmax = 4, 63
    target = str(rate)  # constant bit rate (minrate = maxrate)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "auto-alt-ref": "0", "minrate": target, "maxrate": target,
                     "overshoot-pct": "0", "undershoot-pct": "0",
                     "bufsize": str(layer.bitrate // 2)}
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (h // 4, w // 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 4, 0), 4, 1)  # (h, 2w) moving backdrop
    frames: list[VideoFrame] = []
    for i in range(seconds * FPS):
        offset = (i * 4) % w
        img = np.ascontiguousarray(texture[:, offset : offset + w])
        img[: h // 8, : w // 8] = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        picture = av.VideoFrame.from_ndarray(img, format="rgb24")
        picture.pts = i
        for packet in codec.encode(picture):
            frames.append(VideoFrame(bool(packet.is_keyframe), split_frame(bytes(packet))))
    for packet in codec.encode(None):
        frames.append(VideoFrame(bool(packet.is_keyframe), split_frame(bytes(packet))))
    if not frames or not frames[0].keyframe:
        raise RuntimeError(f"libvpx did not start layer {layer.rid} with a key frame")
    return tuple(frames)


def generate(seconds: int = LOOP_SECONDS) -> MediaCache:
    return MediaCache(
        speech=_encode_audio(True, seconds),
        silence=_encode_audio(False, 1),
        layers=tuple(_encode_video(layer, seconds, seed=7 + i) for i, layer in enumerate(LAYERS)),
    )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tertulia" / "loadtest"


def _cache_name(seconds: int) -> str:
    key = repr((LAYERS, FPS, AUDIO_FRAME_MS, seconds, VP8_MAX_PAYLOAD, _MAGIC, CACHE_VERSION)
               ).encode()
    return f"media-{hashlib.sha256(key).hexdigest()[:12]}.bin"


def load_or_generate(directory: Path | None = None, seconds: int = LOOP_SECONDS) -> MediaCache:
    """The cached media, generated (a few seconds of libvpx) and stored on first use."""
    path = (directory or default_cache_dir()) / _cache_name(seconds)
    if path.exists():
        try:
            return deserialize(path.read_bytes())
        except ValueError:
            pass  # damaged or foreign: generate again
    cache = generate(seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(serialize(cache))
    tmp.replace(path)  # atomic: concurrent generators never see a half-written file
    return cache
