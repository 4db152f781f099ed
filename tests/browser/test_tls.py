"""HTTPS/WSS with a self-signed certificate in real Chromium; the page explains plain HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.conftest import CHROMIUM, FLAGS
from tests.browser.test_meeting import room_url, wait_for
from tests.server import running_server

pytestmark = pytest.mark.timeout(120)


async def test_two_pages_meet_over_https_and_wss_with_a_self_signed_certificate(
    browser: Browser, tmp_path: Path
) -> None:
    async with running_server(self_signed=True, self_signed_dir=str(tmp_path)) as server:
        assert server.http.startswith("https://")
        pages: list[Page] = []
        errors: list[str] = []
        for name in ("Ana", "Bo"):
            context = await browser.new_context(ignore_https_errors=True)
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(room_url(server.http, "tls-room", name))
            pages.append(page)
        for page in pages:
            assert await page.evaluate("() => window.isSecureContext") is True
            assert await page.evaluate("() => location.protocol") == "https:"

        def decoding(s: dict[str, Any]) -> bool:
            peers = s.get("peers", {})
            return len(peers) == 1 and all(v["video"] >= 15 for v in peers.values())

        snap = await wait_for(pages, decoding, timeout=40)
        assert all(s["remotePort"] == server.settings.media_port for s in snap)
        # The signalling socket really is WSS.
        assert await pages[0].evaluate(
            "() => window.tertulia.conference.signal.ws.url.startsWith('wss://')"
        ), "signalling is not over wss"

        # The home page explains the self-signed certificate and shows its fingerprint.
        home = pages[0]
        await home.goto(server.http + "/")
        note = home.locator("#self-signed-note")
        await note.wait_for(timeout=10_000)
        text = await note.inner_text()
        assert "self-signed" in text and "Proceed" in text
        about = await home.evaluate("() => fetch('/about/tls').then(r => r.json())")
        assert about["fingerprint"] in text and about["selfSigned"] is True
        assert await home.locator("#insecure-context").count() == 0
        assert not errors, errors


async def test_plain_http_on_a_name_other_than_localhost_says_camera_needs_https() -> None:
    async with running_server() as server, async_playwright() as p:
        # meet.test resolves to 127.0.0.1 for this browser only: traffic stays on loopback, but
        # for the browser it is an ordinary http:// site, hence not a secure context.
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, "--host-resolver-rules=MAP meet.test 127.0.0.1"],
        )
        try:
            page = await browser.new_page()
            base = f"http://meet.test:{server.settings.port}"
            await page.goto(base + "/")
            assert await page.evaluate("() => window.isSecureContext") is False
            banner = page.locator("#insecure-context")
            await banner.wait_for(timeout=10_000)
            assert "HTTPS" in await banner.inner_text()
            await page.goto(base + "/insecure-room")
            message = page.locator("#media-message")
            await page.wait_for_function(
                "() => (document.querySelector('#media-message')?.textContent || '')"
                ".includes('HTTPS')", timeout=15_000,
            )
            assert "need HTTPS" in await message.inner_text()
        finally:
            await browser.close()
