"""Privacy: anonymous HTTP clients cannot list or probe rooms; logs at info level carry no
chat text, no SDP and no display names.

Every route registered on the real application is requested (so a new route is covered by this
test as soon as it exists) while a meeting with a distinctive room name, display names, chat and
an SDP offer is running.
"""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest
from aiohttp import web

from tertulia.logs import JsonFormatter
from tests.server import running_server
from tests.unit.golden import DATA
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(60)

ROOM = "quarterly-layoffs-7f3a"
NAMES = ("Ana Confidential", "Bo Whistleblower")
CHAT = "the acquisition price is 4.2 billion"
PRIVATE = "meet me at the loading dock"


def urls_for(app: web.Application, conference: str, endpoint: str) -> dict[str, str]:
    """One anonymous GET per registered resource; fails on a route kind it does not know."""
    out: dict[str, str] = {}
    for resource in app.router.resources():
        info = resource.get_info()
        if isinstance(resource, web.StaticResource):
            out[info["prefix"]] = info["prefix"] + "/app.js"
        elif "path" in info:
            out[info["path"]] = info["path"]
        elif info.get("formatter") == "/{room}":
            out["/{room}"] = "/another-room"
        elif info.get("formatter") == "/bridge/ws/{conference}/{endpoint}":
            out["/bridge/ws real ids, no token"] = f"/bridge/ws/{conference}/{endpoint}"
            out["/bridge/ws real ids, bad token"] = f"/bridge/ws/{conference}/{endpoint}?token=x"
            out["/bridge/ws made-up ids"] = "/bridge/ws/nope/nope?token=x"
        else:
            raise AssertionError(f"route {info} is not covered by this test: add it")
    return out


async def test_routes_do_not_reveal_rooms_and_logs_keep_content_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    offer = (DATA / "aiortc-offer-2slots.sdp").read_text()
    async with running_server() as server, aiohttp.ClientSession() as http:
        ana = await Client(http, server.ws, NAMES[0]).connect()
        bo = await Client(http, server.ws, NAMES[1]).connect()
        assert (await ana.join(ROOM))["type"] == "welcome"
        assert (await bo.join(ROOM))["type"] == "welcome"
        answer = await ana.request({"type": "offer", "sdp": offer})
        assert answer["type"] == "answer", answer
        await ana.send({"type": "chat", "text": CHAT})
        await bo.wait(lambda m: m.get("type") == "chat" and m.get("text") == CHAT)
        await bo.send({"type": "chat", "text": PRIVATE, "to": ana.id})
        await ana.wait(lambda m: m.get("type") == "chat" and m.get("text") == PRIVATE)
        (conference,) = server.bridge.conferences.values()
        endpoint_id = answer["endpoint"]
        secrets = [ROOM, conference.id, ana.id, bo.id, endpoint_id, *NAMES]

        bodies: dict[str, tuple[int, str]] = {}
        for name, url in urls_for(server.app, conference.id, endpoint_id).items():
            async with http.get(server.http + url) as resp:
                bodies[name] = (resp.status, await resp.text())
        for name, (_status, body) in bodies.items():
            for secret in secrets:
                assert secret not in body, (name, secret)
        # Probing cannot tell a live endpoint from a made-up one.
        assert {bodies[k] for k in bodies if k.startswith("/bridge/ws")} == {
            (403, bodies["/bridge/ws made-up ids"][1])
        }
        # A room page looks the same whether or not the room exists.
        async with http.get(f"{server.http}/{ROOM}") as resp:
            assert (resp.status, await resp.text()) == bodies["/{room}"]
        # Aggregates only.
        assert bodies["/about/health"][0] == 200
        assert re.search(r"tertulia_signal_rooms \d", bodies["/metrics"][1])
        await ana.close()
        await bo.close()

    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "participant joined" in logged  # the meeting was logged at info level ...
    sdp_values = [line.split(":", 1)[1] for line in offer.split("\r\n")
                  if line.startswith(("a=ice-pwd:", "a=fingerprint:", "a=ice-ufrag:"))]
    answer_values = [line.split(":", 1)[1] for line in answer["sdp"].split("\r\n")
                     if line.startswith(("a=ice-pwd:", "a=ice-ufrag:"))]
    for secret in (CHAT, PRIVATE, *NAMES, "v=0", "a=fingerprint", "m=audio",
                   *sdp_values, *answer_values):
        assert secret not in logged, secret  # ... without what was said or negotiated
