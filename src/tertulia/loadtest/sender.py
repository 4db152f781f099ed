"""RTP packets of one synthetic sender, replayed from the media cache (pure: no I/O).

Audio: one Opus frame per packet (RFC 7587 §4.2), 960 ticks apart, with the RFC 6464 audio
level (client-to-mixer, V bit set while talking) and the RFC 8843 mid extension. Video: each
simulcast layer is its own SSRC carrying the mid and RFC 8852 rid extensions (the bridge
learns layers from them: the offer, like Chromium's, lists no SSRCs), a VP8 payload descriptor
(RFC 7741 §4.2) with a continuous 15-bit PictureID, the marker bit on each frame's last packet
(RFC 7741 §4.1), 90 kHz timestamps 3000 apart at 30 fps.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from tertulia.bridge.rtp.packet import build_extension_block
from tertulia.loadtest.media import FPS, LAYERS, MediaCache, vp8_descriptor
from tertulia.loadtest.sdp import AUDIO_LEVEL_ID, MID_ID, OPUS_PT, RID_ID, VP8_PT

_HDR = struct.Struct("!BBHII")
_B0 = 0x90  # version 2, no padding, extension present, no CSRCs
KEYFRAME_REQUEST_INTERVAL = 0.2  # answer at most this often per layer (a PLI burst is one)


@dataclass(slots=True)
class _Stream:
    ssrc: int
    seq: int
    timestamp: int
    frame: int = 0  # index into the cached frames
    picture_id: int = 0
    last_restart: float = -1e9


def _rand16() -> int:
    return random.randrange(1 << 16)


@dataclass(slots=True)
class MediaSender:
    cache: MediaCache
    audio_ssrc: int
    video_ssrcs: tuple[int, ...]  # one per layer, lowest first
    audio: _Stream = field(init=False)
    layers: list[_Stream] = field(init=False)
    _level_blocks: dict[tuple[bool, int], bytes] = field(default_factory=dict)
    _video_blocks: list[bytes] = field(init=False)
    keyframe_restarts: int = 0

    def __post_init__(self) -> None:
        if len(self.video_ssrcs) != len(LAYERS):
            raise ValueError(f"need {len(LAYERS)} video SSRCs")
        self.audio = _Stream(self.audio_ssrc, _rand16(), random.randrange(1 << 32))
        self.layers = [_Stream(s, _rand16(), random.randrange(1 << 32), 0,
                               random.randrange(1 << 15)) for s in self.video_ssrcs]
        self._video_blocks = [
            build_extension_block([(MID_ID, b"1"), (RID_ID, layer.rid.encode())])
            for layer in LAYERS
        ]

    def audio_packet(self, talking: bool) -> bytes:
        """The next 20 ms of audio: speech frames (with their levels) while talking, else
        silence (level 127)."""
        s = self.audio
        frames = self.cache.speech if talking else self.cache.silence
        frame = frames[s.frame % len(frames)]
        key = (talking and frame.level < 127, frame.level)
        block = self._level_blocks.get(key)
        if block is None:
            value = bytes(((0x80 if key[0] else 0) | frame.level,))
            block = build_extension_block([(AUDIO_LEVEL_ID, value), (MID_ID, b"0")])
            self._level_blocks[key] = block
        data = _HDR.pack(_B0, OPUS_PT, s.seq, s.timestamp, s.ssrc) + block + frame.payload
        s.seq = (s.seq + 1) & 0xFFFF
        s.timestamp = (s.timestamp + 960) & 0xFFFFFFFF
        s.frame += 1
        return data

    def video_frame(self, layer: int) -> list[tuple[int, bytes]]:
        """The next frame of one layer as ``(seq, packet)`` pairs."""
        s = self.layers[layer]
        frames = self.cache.layers[layer]
        frame = frames[s.frame % len(frames)]
        block = self._video_blocks[layer]
        out = []
        last = len(frame.chunks) - 1
        for i, chunk in enumerate(frame.chunks):
            b1 = VP8_PT | (0x80 if i == last else 0)
            head = _HDR.pack(_B0, b1, s.seq, s.timestamp, s.ssrc)
            out.append((s.seq, head + block + vp8_descriptor(i == 0, s.picture_id,
                                                               s.picture_id & 0xFF) + chunk))
            s.seq = (s.seq + 1) & 0xFFFF
        s.picture_id = (s.picture_id + 1) & 0x7FFF
        s.timestamp = (s.timestamp + 90000 // FPS) & 0xFFFFFFFF
        s.frame += 1
        if s.frame % len(frames) == 0:
            s.frame = 0  # the loop starts again on its key frame
        return out

    def request_keyframe(self, ssrc: int, now: float) -> bool:
        """A PLI/FIR for ``ssrc``: replay that layer from its cached key frame (RFC 4585
        §6.3.1). Returns whether it restarted (requests within 200 ms count as one)."""
        for s in self.layers:
            if s.ssrc == ssrc:
                if now - s.last_restart < KEYFRAME_REQUEST_INTERVAL:
                    return False
                s.last_restart = now
                s.frame = 0
                self.keyframe_restarts += 1
                return True
        return False


class SentHistory:
    """The last ``size`` protected packets per sequence number, to answer NACKs (RFC 4585
    §6.2.1) by sending the same packet again."""

    __slots__ = ("_ring", "_size")

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._ring: list[tuple[int, int, bytes] | None] = [None] * size

    def add(self, ssrc: int, seq: int, data: bytes) -> None:
        self._ring[seq % self._size] = (ssrc, seq, data)

    def get(self, ssrc: int, seq: int) -> bytes | None:
        item = self._ring[seq % self._size]
        if item is None or item[0] != ssrc or item[1] != seq:
            return None
        return item[2]


def active_layers(max_height: int) -> tuple[bool, ...]:
    """Layer suspension as the web client does it (media.js ``activeLayers``): -1 sends every
    layer, 0 none (nobody watches), else the layers no taller than ``max_height``, and the
    lowest one always."""
    if max_height < 0:
        return tuple(True for _ in LAYERS)
    if max_height == 0:
        return tuple(False for _ in LAYERS)
    return tuple(i == 0 or layer.height <= max_height for i, layer in enumerate(LAYERS))
