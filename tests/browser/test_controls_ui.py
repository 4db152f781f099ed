"""Lobby, password, moderator actions and chat through the real UI in Chromium."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page

from tests.server import running_server

pytestmark = pytest.mark.timeout(180)


def url(base: str, room: str, name: str) -> str:
    return (f"{base}/{room}#config.prejoinConfig.enabled=false&config.resolution=360"
            f"&config.startWithVideoMuted=true"
            f"&userInfo.displayName={quote(chr(34) + name + chr(34))}")


async def open_page(browser: Browser, address: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(address)
    return page


async def joined(page: Page) -> None:
    await page.wait_for_function(
        "() => window.tertulia && window.tertulia.state === 'joined' && window.tertulia.me",
        timeout=15_000,
    )


async def test_lobby_password_moderation_and_chat_in_the_ui(browser: Browser) -> None:
    async with running_server() as server:
        room = "ui-controls"
        mod = await open_page(browser, url(server.http, room, "Mod"))
        await joined(mod)
        assert await mod.evaluate("() => window.tertulia.role") == "moderator"

        # Moderator turns the lobby on in the security dialog.
        await mod.click("#security-button")
        await mod.wait_for_selector("#security-dialog[open]")
        await mod.click("#lobby-toggle")
        await mod.wait_for_function("() => window.tertulia.roomState.lobby === true")
        await mod.keyboard.press("Escape")
        await mod.wait_for_selector("#security-dialog[open]", state="detached", timeout=5_000)

        # A guest knocks and waits; the moderator admits from the knock list.
        guest = await open_page(browser, url(server.http, room, "Guest"))
        await guest.wait_for_selector("#lobby-screen", timeout=15_000)
        assert await guest.evaluate("() => window.tertulia.me") in (None, "")
        await mod.wait_for_selector(".knock-item .knock-admit", timeout=10_000)
        await mod.click(".knock-item .knock-admit")
        await joined(guest)

        # The moderator sets a password; a newcomer has to give it.
        await mod.click("#security-button")
        await mod.wait_for_selector("#security-dialog[open]")
        await mod.click("#lobby-toggle")  # lobby off: only the password guards the room now
        await mod.wait_for_function("() => window.tertulia.roomState.lobby === false")
        await mod.fill("#room-password", "open-sesame")
        await mod.click("#password-set")
        await mod.wait_for_function("() => window.tertulia.roomState.locked === true")
        await mod.keyboard.press("Escape")
        late = await open_page(browser, url(server.http, room, "Late"))
        await late.wait_for_selector("#password-screen", timeout=15_000)
        await late.fill("#password-input", "wrong")
        await late.click("#password-submit")
        await late.wait_for_function(
            "() => (document.querySelector('#password-error')?.textContent || '').length > 0"
        )
        await late.fill("#password-input", "open-sesame")
        await late.click("#password-submit")
        await joined(late)

        # Chat is text, never markup.
        await mod.click("#chat-button")
        payload = '<img src=x onerror="window.pwned=1">hello'
        await mod.fill("#chat-input", payload)
        await mod.press("#chat-input", "Enter")
        await guest.wait_for_function(
            "() => (window.tertulia.chat || []).some(m => m.text.includes('hello'))"
        )
        await guest.click("#chat-button")
        await guest.wait_for_selector("#chat-messages .chat-msg")
        text = await guest.inner_text("#chat-messages")
        assert payload in text
        assert await guest.locator("#chat-messages img").count() == 0
        assert await guest.evaluate("() => window.pwned") is None

        # Moderator mutes the guest and kicks the latecomer from the participants panel.
        guest_id = await guest.evaluate("() => window.tertulia.me")
        late_id = await late.evaluate("() => window.tertulia.me")
        await mod.click("#participants-button")
        await mod.click(f'.action-mute-audio[data-participant="{guest_id}"]')
        await guest.wait_for_function("() => window.tertulia.audioMuted === true")
        await mod.click(f'.action-kick[data-participant="{late_id}"]')
        await late.wait_for_selector('#error-screen[data-code="kicked"]', timeout=10_000)
        await mod.wait_for_function(
            f"() => !window.tertulia.participants.has('{late_id}')", timeout=5_000
        )

        # A non-moderator sees no moderator actions.
        await guest.click("#participants-button")
        await guest.wait_for_selector("#participants-panel")
        assert await guest.locator(".action-kick").count() == 0
