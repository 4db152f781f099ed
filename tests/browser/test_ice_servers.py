"""The web client hands the welcome's TURN servers to its RTCPeerConnection."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tertulia.turn import credential
from tests.browser.test_meeting import room_url
from tests.server import free_port, running_server

pytestmark = pytest.mark.timeout(60)


async def test_peer_connection_uses_the_turn_credentials_of_the_welcome(browser: Browser) -> None:
    url = f"turn:127.0.0.1:{free_port()}?transport=tcp"  # nobody listens: only config is checked
    async with running_server(turn_urls=(url,), turn_secret="s3cret") as server:
        page = await (await browser.new_context()).new_page()
        await page.goto(room_url(server.http, "ice-room", "Ana"))
        await page.wait_for_function("() => window.tertulia && window.tertulia.pc", timeout=15_000)
        config = await page.evaluate("() => window.tertulia.pc.getConfiguration().iceServers")
        me = await page.evaluate("() => window.tertulia.me")
    assert len(config) == 1 and config[0]["urls"] == [url]
    expiry, participant = config[0]["username"].split(":")
    assert participant == me and expiry.isdigit()
    assert config[0]["credential"] == credential("s3cret", config[0]["username"])
