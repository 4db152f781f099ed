"""Chromium sends its camera as simulcast layers; the bridge gives each receiver one layer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.test_meeting import room_url
from tests.browser.test_temporal import INBOUND_JS
from tests.server import running_server

pytestmark = pytest.mark.timeout(180)

async def wait_width(page: Page, pid: str, check: Any, timeout: float) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = await page.evaluate(INBOUND_JS, pid)
        if last and check(last["width"]):
            return dict(last)
        await asyncio.sleep(0.5)
    raise AssertionError(f"width never matched: {last}")


async def test_each_receiver_gets_the_layer_it_asks_for(browser: Browser) -> None:
    async with running_server() as server:
        pages = []
        for name in ("Ana", "Bo"):
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            page = await context.new_page()
            # the product's default camera (1280x720): three layers
            await page.goto(room_url(server.http, "simulcast-room", name, resolution=720))
            await page.wait_for_function("() => window.tertulia && window.tertulia.me",
                                         timeout=20_000)
            pages.append(page)
        ana, bo = pages
        ana_id = await ana.evaluate("() => window.tertulia.me")
        bridge = server.bridge
        # Chromium really sends several layers, learned by rid.
        deadline = time.monotonic() + 20
        media = None
        while time.monotonic() < deadline:
            conference = next(iter(bridge.conferences.values()), None)
            endpoint = conference.endpoints.get(ana_id) if conference else None
            media = endpoint.sending.get("video") if endpoint else None
            if media is not None and len(media.layer_height) >= 3:
                break
            await asyncio.sleep(0.5)
        assert media is not None and len(media.layer_of) >= 2, media
        # The default camera is 1280x720, sent as three encodings: 320x180, 640x360 and
        # 1280x720. Chromium turns the top one on once its estimate allows ~2.2 Mbit/s, which
        # on a busy machine can take longer than the wait above.
        capture = await ana.evaluate(
            "() => { const s = window.tertulia.session.videoTransceiver.sender;"
            " return [s.track.getSettings().height, s.getParameters().encodings.length]; }")
        assert capture == [720, 3], capture
        heights = sorted(media.layer_height.values())
        assert heights == [180, 360, 720][: len(heights)], media.layer_height
        # Bo's client asks for what its tile of Ana needs. Big tile: more than the lowest layer.
        wide = await wait_width(bo, ana_id, lambda w: w > 320, timeout=30)
        assert wide["width"] in (640, 1280)
        # A small window: the tile is under 180 px tall (about 120), so only the lowest layer
        # (320x180) is sent.
        await bo.set_viewport_size({"width": 420, "height": 330})
        await bo.wait_for_function(
            f"() => {{ const c = window.tertulia.constraints; const h = c && c.maxHeights"
            f" && c.maxHeights['{ana_id}']; return h > 0 && h < 180; }}", timeout=10_000)
        await wait_width(bo, ana_id, lambda w: w == 320, timeout=20)
        # Layer suspension reached Ana: the largest height anyone wants of her camera.
        wanted = await ana.evaluate("() => window.tertulia.session.maxHeightWanted")
        assert 0 < wanted < 180
        # Back to a big window: a taller layer again.
        await bo.set_viewport_size({"width": 1280, "height": 720})
        await wait_width(bo, ana_id, lambda w: w > 320, timeout=20)


LAYER_BYTES_JS = """async () => {
  const out = {};
  (await window.tertulia.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out[s.rid] = s.bytesSent || 0;
  });
  return out;
}"""


async def layer_bytes(page: Page) -> dict[str, int]:
    result: dict[str, int] = await page.evaluate(LAYER_BYTES_JS)
    return result


async def growing(page: Page, rid: str, seconds: float) -> int:
    """Bytes the sender sent on layer ``rid`` over the next ``seconds``."""
    before = (await layer_bytes(page)).get(rid, 0)
    await asyncio.sleep(seconds)
    return (await layer_bytes(page)).get(rid, 0) - before


async def test_unwatched_top_layer_stops_and_resumes_on_stage(browser: Browser) -> None:
    async with running_server() as server:
        pages = []
        for name in ("Ana", "Bo", "Cy"):
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            page = await context.new_page()
            await page.goto(room_url(server.http, "suspension-room", name))
            await page.wait_for_function("() => window.tertulia && window.tertulia.me",
                                         timeout=30_000)
            pages.append(page)
        ana, bo, cy = pages
        ana_id = await ana.evaluate("() => window.tertulia.me")
        # The top layer Ana's camera sends (the page asks for 640x360: Chromium sends l and m).
        deadline = time.monotonic() + 30
        top = None
        while time.monotonic() < deadline and top is None:
            sent = await layer_bytes(ana)
            live = [rid for rid in ("h", "m") if sent.get(rid, 0) > 20_000]
            top = live[0] if live else None
            await asyncio.sleep(0.5)
        assert top is not None, await layer_bytes(ana)
        # Everyone shows Ana as a thumbnail: Bo and Cy each pin the other to the stage.
        await bo.get_by_role("button", name="Pin Cy to the stage").click()
        await cy.get_by_role("button", name="Pin Bo to the stage").click()
        await ana.wait_for_function(
            "() => { const m = window.tertulia.session.maxHeightWanted;"
            " return m >= 0 && m < 180; }", timeout=15_000)
        await asyncio.sleep(1.0)  # the encoder stops at its next frame
        assert await growing(ana, top, 2.0) == 0, "the unwatched top layer kept sending"
        # Bo puts Ana on the stage: her top layer comes back within 3 s.
        pin = bo.get_by_role("button", name="Pin Ana to the stage")
        await pin.click()
        pinned_at = time.monotonic()
        resumed = None
        while time.monotonic() - pinned_at < 10:
            if await growing(ana, top, 0.25) > 0:
                resumed = time.monotonic() - pinned_at
                break
        assert resumed is not None and resumed < 3.0, (
            resumed,
            await bo.evaluate("() => window.tertulia.constraints"),
            await ana.evaluate("() => window.tertulia.session.maxHeightWanted"),
        )
        assert await bo.evaluate("() => window.tertulia.pinned") == ana_id
