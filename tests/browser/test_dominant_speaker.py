"""Dominant speaker with real Chromium: one participant talks (a recorded-style audio file),
the others are silent; everyone sees the talker become dominant within 2 s."""

from __future__ import annotations

import asyncio
import math
import random
import struct
import time
import wave
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.conftest import CHROMIUM, FLAGS
from tests.browser.test_meeting import room_url
from tests.server import running_server

pytestmark = pytest.mark.timeout(180)

RATE = 48_000


def write_wav(path: Path, seconds: float, speech: bool) -> None:
    """Mono 16-bit audio: speech-like (noise shaped into ~4 syllables per second with short
    pauses between phrases) or digital silence."""
    rng = random.Random(7)
    frames = bytearray()
    low = 0.0
    for i in range(int(seconds * RATE)):
        t = i / RATE
        sample = 0.0
        if speech and (t % 2.0) < 1.6:  # 1.6 s phrases, 0.4 s pauses
            envelope = max(0.0, math.sin(2 * math.pi * 4 * t)) ** 0.5
            low += 0.2 * (rng.uniform(-1, 1) - low)  # low-passed noise: voice-like spectrum
            voiced = 0.6 * math.sin(2 * math.pi * 140 * t) + low
            sample = 0.5 * envelope * voiced
        frames += struct.pack("<h", int(max(-1.0, min(1.0, sample)) * 32767))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))


async def join(browser: Browser, base: str, name: str) -> Page:
    context = await browser.new_context(viewport={"width": 1000, "height": 700})
    page = await context.new_page()
    await page.goto(room_url(base, "speaker-room", name))
    await page.wait_for_function("() => window.tertulia && window.tertulia.me", timeout=60_000)
    return page


async def test_the_one_who_talks_becomes_dominant_within_two_seconds(tmp_path: Path) -> None:
    speech, silence = tmp_path / "speech.wav", tmp_path / "silence.wav"
    write_wav(speech, 8.0, speech=True)
    write_wav(silence, 2.0, speech=False)

    def flags(audio: Path) -> list[str]:
        return [*FLAGS, f"--use-file-for-fake-audio-capture={audio}"]

    async with running_server() as server, async_playwright() as p:
        quiet = await p.chromium.launch(executable_path=CHROMIUM, args=flags(silence))
        loud = await p.chromium.launch(executable_path=CHROMIUM, args=flags(speech))
        try:
            bo = await join(quiet, server.http, "Bo")
            cy = await join(quiet, server.http, "Cy")
            await asyncio.sleep(3)  # two silent participants: nobody to choose yet
            ana = await join(loud, server.http, "Ana")
            ana_id = await ana.evaluate("() => window.tertulia.me")
            await ana.wait_for_function(
                "() => window.tertulia.pc && window.tertulia.pc.connectionState === 'connected'",
                timeout=30_000)
            # The clock starts when her media reaches the bridge: on a busy machine the
            # first SRTP packets can trail the connection state by a good part of a second.
            for _ in range(100):  # bounded: 10 s
                conference = next(iter(server.bridge.conferences.values()), None)
                endpoint = conference.endpoints.get(ana_id) if conference else None
                if endpoint is not None and endpoint.stats.rtp_in > 0:
                    break
                await asyncio.sleep(0.1)
            connected = time.monotonic()
            seen: dict[str, float] = {}
            while time.monotonic() - connected < 10 and len(seen) < 2:
                for name, page in (("bo", bo), ("cy", cy)):
                    if name not in seen and await page.evaluate(
                            "() => window.tertulia.dominantSpeaker") == ana_id:
                        seen[name] = time.monotonic() - connected
                await asyncio.sleep(0.1)
            assert set(seen) == {"bo", "cy"}, seen
            print(f"dominant after {max(seen.values()):.2f} s of media")
            assert max(seen.values()) < 2.0, seen
            # and she stays dominant while the others keep quiet
            await asyncio.sleep(2)
            for page in (bo, cy):
                assert await page.evaluate("() => window.tertulia.dominantSpeaker") == ana_id
        finally:
            await loud.close()
            await quiet.close()
