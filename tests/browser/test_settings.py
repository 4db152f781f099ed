"""The in-meeting Settings dialog in Chromium: a new display name reaches the others; another
camera or microphone replaces the sending track without renegotiation, keeps the mute state,
and the others keep decoding; the speaker choice reaches the remote media elements."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page

from tests.browser.test_ux import SIZES, shot
from tests.server import running_server

pytestmark = pytest.mark.timeout(180)


# framesDecoded of the video of participant `pid` (-1 while it has no slot).
FRAMES_JS = """async (pid) => {
  const t = window.tertulia, i = t.slots.indexOf(pid);
  if (i < 0 || !t.pc) return -1;
  const mid = t.slotTransceivers(i).video.mid;
  let n = 0;
  (await t.pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.mid === mid) n = s.framesDecoded || 0; });
  return n; }"""

# The track on one of our two sending transceivers, with its device and state.
SENDER_JS = """(kind) => {
  const s = window.tertulia.session;
  const track = (kind === 'audio' ? s.audioTransceiver : s.videoTransceiver).sender.track;
  return track && {id: track.id, device: track.getSettings().deviceId, enabled: track.enabled,
                   state: track.readyState}; }"""


def url(base: str, room: str, name: str) -> str:
    return (f"{base}/{room}#config.prejoinConfig.enabled=false&config.resolution=360"
            f"&userInfo.displayName={quote(chr(34) + name + chr(34))}")


async def join(browser: Browser, address: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport=SIZES["desktop"])  # type: ignore[arg-type]
    # Granting replaces the context's permissions: camera and microphone stay in the list.
    await context.grant_permissions(["camera", "microphone"])
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(address)
    await page.wait_for_function(
        "() => window.tertulia && window.tertulia.state === 'joined'", timeout=20_000
    )
    return page


async def frames_above(page: Page, pid: str, minimum: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    frames = -1
    while time.monotonic() < deadline:
        frames = await page.evaluate(FRAMES_JS, pid)
        if frames > minimum:
            return int(frames)
        await page.wait_for_timeout(500)
    raise AssertionError(f"framesDecoded of {pid} stayed at {frames} (wanted > {minimum})")


async def open_settings(page: Page) -> None:
    await page.click("#settings-button")
    await page.wait_for_selector("#settings-dialog[open]")
    assert await page.evaluate("() => document.activeElement.id") == "settings-name"
    assert await page.locator("#settings-dialog #settings-audio-level").count() == 1


async def close_settings(page: Page, back_to: str = "settings-button") -> None:
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#settings-dialog", state="hidden")
    await page.wait_for_function(
        f"() => document.activeElement && document.activeElement.id === '{back_to}'",
        timeout=5_000,
    )


async def options(page: Page, select: str) -> list[str]:
    values: list[str] = await page.eval_on_selector_all(
        f"{select} option", "(os) => os.map((o) => o.value)")
    return values


async def test_settings_name_and_devices(browser: Browser) -> None:
    errors: list[str] = []
    async with running_server() as server:
        ana = await join(browser, url(server.http, "settings-room", "Ana"), errors)
        bo = await join(browser, url(server.http, "settings-room", "Bo"), errors)
        ana_id = await ana.evaluate("() => window.tertulia.me")
        frames = await frames_above(bo, ana_id, 10)

        # A new name: sent with set-name, seen by Bo (state and tile), shown on Ana's own tile.
        await open_settings(ana)
        assert await ana.input_value("#settings-name") == "Ana"
        await ana.fill("#settings-name", "Ana Souza")
        await ana.click("#settings-name-save")
        await bo.wait_for_function(
            "(id) => window.tertulia.participants.get(id)?.name === 'Ana Souza'", arg=ana_id,
            timeout=10_000)
        await bo.wait_for_function(
            "(id) => document.querySelector(`.tile[data-participant=\"${id}\"] .tile-name`)"
            "?.textContent === 'Ana Souza'", arg=ana_id, timeout=10_000)
        await ana.wait_for_function(
            "() => document.querySelector('.tile[data-local] .tile-name')?.textContent"
            " === 'Ana Souza (you)'", timeout=10_000)
        assert await ana.evaluate("() => window.tertulia.conference.name") == "Ana Souza"
        assert await ana.evaluate(
            "() => localStorage.getItem('tertulia.displayName')") == "Ana Souza"
        await shot(ana, "settings-dialog")

        # Camera: another one if Chromium lists several, else the same one again. Either way a
        # new track on the same sender, no new offer, the old track stopped, Bo still decoding.
        sdp = await ana.evaluate("() => window.tertulia.pc.localDescription.sdp")
        before = await ana.evaluate(SENDER_JS, "video")
        await ana.evaluate("() => { window.oldCamera = window.tertulia.session"
                           ".videoTransceiver.sender.track; }")
        cameras = await options(ana, "#settings-camera")
        assert before["device"] in cameras, (before, cameras)
        camera = next((c for c in cameras if c != before["device"]), before["device"])
        await ana.select_option("#settings-camera", camera)
        await ana.wait_for_function(
            f"() => ({SENDER_JS})('video')?.id !== {before['id']!r}", timeout=10_000)
        after = await ana.evaluate(SENDER_JS, "video")
        assert after["state"] == "live" and after["device"] == camera, after
        assert await ana.evaluate("() => window.oldCamera.readyState") == "ended"
        assert await ana.evaluate("() => window.tertulia.pc.localDescription.sdp") == sdp
        assert await ana.evaluate("() => window.tertulia.pc.signalingState") == "stable"
        # The local preview (own tile) shows the new track.
        await ana.wait_for_function(
            "(id) => document.querySelector('.tile[data-local] video')"
            "?.srcObject?.getVideoTracks()[0]?.id === id", arg=after["id"], timeout=5_000)
        frames = await frames_above(bo, ana_id, frames + 30)

        # Microphone while muted: the new track goes out disabled and Ana stays muted.
        await close_settings(ana)
        await ana.click("#toggle-audio")
        await ana.wait_for_function("() => window.tertulia.audioMuted === true")
        await bo.wait_for_function(
            "(id) => window.tertulia.participants.get(id)?.audioMuted === true", arg=ana_id)
        await open_settings(ana)
        mic_before = await ana.evaluate(SENDER_JS, "audio")
        mics = await options(ana, "#settings-mic")
        mic = next((m for m in mics if m != mic_before["device"]), mic_before["device"])
        await ana.select_option("#settings-mic", mic)
        await ana.wait_for_function(
            f"() => ({SENDER_JS})('audio')?.id !== {mic_before['id']!r}", timeout=10_000)
        mic_after = await ana.evaluate(SENDER_JS, "audio")
        assert mic_after["device"] == mic and mic_after["enabled"] is False, mic_after
        assert await ana.evaluate("() => window.tertulia.audioMuted") is True
        assert await ana.evaluate("() => localStorage.getItem('tertulia.mic')") == mic
        assert await ana.evaluate("() => window.tertulia.pc.localDescription.sdp") == sdp

        # Speaker (Chromium has setSinkId): every remote media element plays on it.
        if await ana.is_visible("#settings-speaker"):
            speakers = await options(ana, "#settings-speaker")
            speaker = next(s for s in speakers if s not in ("", "default"))
            await ana.select_option("#settings-speaker", speaker)
            await ana.wait_for_function(
                "(id) => { const v = [...document.querySelectorAll("
                "'.tile:not([data-local]) video')];"
                " return v.length > 0 && v.every((e) => e.sinkId === id); }", arg=speaker,
                timeout=5_000)

        # Camera off: the choice is only remembered, and used when the camera turns on.
        await close_settings(ana)
        await ana.click("#toggle-video")
        await ana.wait_for_function("() => window.tertulia.videoMuted === true")
        await open_settings(ana)
        await ana.select_option("#settings-camera", camera)
        assert await ana.evaluate(SENDER_JS, "video") is None
        assert await ana.evaluate("() => localStorage.getItem('tertulia.camera')") == camera
        await shot(ana, "settings-camera-off")
        await close_settings(ana)
        await ana.click("#toggle-video")
        await ana.wait_for_function("() => window.tertulia.videoMuted === false")
        assert (await ana.evaluate(SENDER_JS, "video"))["device"] == camera
        await frames_above(bo, ana_id, frames + 10)

        # Phone width: the button lives in the More menu; closing returns focus to More.
        await ana.set_viewport_size(SIZES["phone"])  # type: ignore[arg-type]
        await ana.click("#more-button")
        await ana.click("#more-menu #settings-button")
        await ana.wait_for_selector("#settings-dialog[open]")
        # the dialog moves focus to its name field when it has opened
        await ana.wait_for_function(
            "() => document.activeElement && document.activeElement.id === 'settings-name'",
            timeout=5_000,
        )
        await close_settings(ana, back_to="more-button")
    assert not errors, errors
