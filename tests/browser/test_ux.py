"""First-time-user flows clicked through in Chromium: lonely screen, invite link, tile view at
three, screen share, raised hand, lobby denial; screenshots at desktop and phone sizes."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.server import running_server

pytestmark = pytest.mark.timeout(240)

SHOTS = os.environ.get("TERTULIA_SCREENSHOTS")
SIZES = {"desktop": {"width": 1280, "height": 720}, "phone": {"width": 390, "height": 844}}


def url(base: str, room: str, name: str, *, video: bool = True) -> str:
    muted = "" if video else "&config.startWithVideoMuted=true"
    return (f"{base}/{room}#config.prejoinConfig.enabled=false&config.resolution=360{muted}"
            f"&userInfo.displayName={quote(chr(34) + name + chr(34))}")


async def new_page(browser: Browser, address: str, size: str = "desktop"
                   ) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=SIZES[size])  # type: ignore[arg-type]
    # Granting replaces the context's permissions: keep camera and microphone in the list
    # (without them Chromium also hides its host candidates and ICE never starts).
    await context.grant_permissions(["camera", "microphone", "clipboard-read", "clipboard-write"])
    page = await context.new_page()
    await page.goto(address)
    await page.wait_for_function(
        "() => window.tertulia && window.tertulia.state === 'joined'", timeout=20_000
    )
    return context, page


async def shot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
        await page.wait_for_timeout(1500)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}-{size}.png"))
    await page.set_viewport_size(SIZES["desktop"])  # type: ignore[arg-type]


async def test_lonely_invite_tiles_screen_share_and_hands(browser: Browser) -> None:
    async with running_server() as server:
        room = "ux-flows"
        _, ana = await new_page(browser, url(server.http, room, "Ana"))
        # Alone: the lonely screen with the invite link front and centre.
        await ana.wait_for_selector("#lonely", state="visible")
        link = await ana.input_value("#lonely-link")
        assert link == f"{server.http}/{room}"
        await shot(ana, "lonely")
        await ana.click("#copy-link")
        assert await ana.evaluate("() => navigator.clipboard.readText()") == link
        await ana.click("#invite-button")
        await ana.wait_for_selector("#invite-dialog[open]")
        assert await ana.input_value("#invite-link") == link
        await ana.keyboard.press("Escape")

        # A second person: the lonely screen goes away.
        _, bo = await new_page(browser, url(server.http, room, "Bo"))
        await ana.wait_for_selector("#lonely", state="hidden", timeout=10_000)
        await shot(bo, "stage-two")

        # A third: tile view turns on by itself everywhere.
        _, cy = await new_page(browser, url(server.http, room, "Cy", video=False))
        for page in (ana, bo, cy):
            await page.wait_for_selector('#stage[data-layout="tile"]', timeout=10_000)
        _, di = await new_page(browser, url(server.http, room, "Di", video=False))
        await ana.wait_for_function("() => window.tertulia.participants.size === 3")
        await ana.wait_for_function(
            "() => document.querySelectorAll('#grid .tile').length === 4", timeout=10_000
        )
        # Bo's camera is decoding in Ana's grid (the others joined with the camera off).
        await ana.wait_for_function(
            f"() => {{ const v = document.querySelector("
            f"'.tile[data-participant=\"{await bo.evaluate('() => window.tertulia.me')}\"] video');"
            " return v && v.videoWidth > 0 && v.currentTime > 0; }", timeout=15_000
        )
        await shot(ana, "tiles-four")

        # Raised hand shows on the others' tiles.
        bo_id = await bo.evaluate("() => window.tertulia.me")
        await bo.click("#raise-hand-button")
        await ana.wait_for_selector(f'.tile[data-participant="{bo_id}"] .tile-hand',
                                    timeout=10_000)

        # Ana shares her screen: the others see it on stage, decoding.
        ana_id = await ana.evaluate("() => window.tertulia.me")
        await ana.click("#screen-button")
        await ana.wait_for_function("() => window.tertulia.sharing === true", timeout=15_000)
        for page in (bo, di):
            await page.wait_for_function(f"() => window.tertulia.screen === '{ana_id}'",
                                         timeout=10_000)
            await page.wait_for_selector("#screen-tile", state="visible", timeout=10_000)
        frames_js = """async () => {
            const t = window.tertulia, mid = t.screenTransceiver.mid;
            let n = 0;
            (await t.pc.getStats()).forEach(s => {
              if (s.type === 'inbound-rtp' && s.mid === mid) n = s.framesDecoded || 0; });
            return n; }"""
        decoded = 0
        for _ in range(40):  # bounded: 20 s
            decoded = await bo.evaluate(frames_js)
            if decoded > 10:
                break
            await bo.wait_for_timeout(500)
        assert decoded > 10, decoded
        await shot(bo, "screen-share")
        await ana.click("#screen-button")
        await bo.wait_for_function("() => window.tertulia.screen === null", timeout=10_000)


async def test_lobby_denial_and_screens(browser: Browser) -> None:
    async with running_server() as server:
        room = "ux-lobby"
        _, mod = await new_page(browser, url(server.http, room, "Mod"))
        await mod.click("#security-button")
        await mod.wait_for_selector("#security-dialog[open]")
        await mod.click("#lobby-toggle")
        await mod.wait_for_function("() => window.tertulia.roomState.lobby === true")
        await shot(mod, "security-dialog")
        await mod.keyboard.press("Escape")

        context = await browser.new_context(viewport=SIZES["desktop"])  # type: ignore[arg-type]
        guest = await context.new_page()
        await guest.goto(url(server.http, room, "Guest"))
        await guest.wait_for_selector("#lobby-screen", timeout=15_000)
        await shot(guest, "lobby-waiting")
        await mod.wait_for_selector(".knock-item .knock-deny", timeout=10_000)
        await mod.click(".knock-item .knock-deny")
        await guest.wait_for_selector('#error-screen[data-code="lobby-denied"]', timeout=10_000)
        assert await guest.evaluate("() => window.tertulia.me") in (None, "")

        context = await browser.new_context(viewport=SIZES["desktop"])  # type: ignore[arg-type]
        prejoin = await context.new_page()
        await prejoin.goto(f"{server.http}/{room}")
        await prejoin.wait_for_selector("#display-name")
        await prejoin.wait_for_function(
            "() => { const v = document.querySelector('#preview');"
            " return v && v.videoWidth > 0; }", timeout=10_000)
        await prejoin.fill("#display-name", "Dana")
        await shot(prejoin, "prejoin")
