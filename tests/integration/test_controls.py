"""Roles, moderator controls, chat, hands, lobby, password, limits and resume, over /ws."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tertulia.signal.app import HUB_KEY
from tests.server import RunningServer, running_server
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def clients(
    *names: str, **settings: Any
) -> AsyncIterator[tuple[RunningServer, aiohttp.ClientSession, list[Client]]]:
    async with running_server(**settings) as server, aiohttp.ClientSession() as http:
        made = [await Client(http, server.ws, name).connect() for name in names]
        try:
            yield server, http, made
        finally:
            for c in made:
                await c.close()


async def test_first_is_moderator_and_moderator_actions_are_refused_to_others() -> None:
    async with clients("mod", "guest", "third") as (_, _, (mod, guest, third)):
        assert (await mod.join("r"))["role"] == "moderator"
        welcome = await guest.join("r")
        assert welcome["role"] == "participant"
        assert welcome["participants"][0]["role"] == "moderator"
        for action in (
            {"type": "kick", "participant": mod.id},
            {"type": "mute-all", "kind": "audio"},
            {"type": "set-lobby", "enabled": True},
            {"type": "end-meeting"},
        ):
            reply = await guest.request(action)
            assert reply["code"] == "not-moderator", reply
        await third.join("r")
        await mod.request({"type": "grant-moderator", "participant": guest.id})
        updated = await third.wait_type("participant-updated")
        assert updated["participant"]["id"] == guest.id
        assert updated["participant"]["role"] == "moderator"
        reply = await guest.request({"type": "ask-unmute"})
        assert reply.get("type") != "error"
        assert (await third.wait_type("unmute-requested"))["by"] == guest.id


async def test_set_name_updates_everyone() -> None:
    async with clients("a", "b") as (_, _, (a, b)):
        await a.join("names")
        await b.join("names")
        assert (await b.request({"type": "set-name", "name": "  Bea\u0007 Smith "}))["type"] == "ok"
        for c in (a, b):
            seen = await c.wait_type("participant-updated")
            assert seen["participant"]["id"] == b.id and seen["participant"]["name"] == "Bea Smith"
        assert (await b.request({"type": "set-name", "name": "\u0007"}))["code"] == "bad-message"


async def test_moderator_leaving_hands_over_to_the_longest_present() -> None:
    async with clients("a", "b", "c") as (_, _, (a, b, c)):
        for x in (a, b, c):
            await x.join("heir")
        await a.request({"type": "leave"})
        updated = await c.wait_type("participant-updated")
        assert updated["participant"] == {**updated["participant"], "id": b.id, "role": "moderator"}


async def test_mute_kick_and_end_meeting() -> None:
    async with clients("mod", "x", "y") as (server, _, (mod, x, y)):
        for c in (mod, x, y):
            await c.join("ctl")
        await mod.request({"type": "mute-participant", "participant": x.id, "kind": "audio"})
        muted = await x.wait_type("muted-by-moderator")
        assert (muted["kind"], muted["by"]) == ("audio", mod.id)
        seen = await y.wait(lambda m: m.get("type") == "participant-updated"
                            and m["participant"]["id"] == x.id)
        assert seen["participant"]["audioMuted"] is True
        await mod.request({"type": "mute-all", "kind": "video"})
        assert (await y.wait_type("muted-by-moderator", kind="video"))["by"] == mod.id
        assert not mod.received("muted-by-moderator")

        await mod.request({"type": "kick", "participant": x.id, "message": "bye <b>now</b>"})
        kicked = await x.wait_type("kicked")
        assert kicked["message"] == "bye <b>now</b>"  # carried as text, never as markup
        await asyncio.wait_for(x.closed.wait(), 5)
        left = await y.wait_type("participant-left", id=x.id)
        assert left["reason"] == "kicked"

        await mod.send({"type": "end-meeting"})  # the connection closes: no reply
        for c in (mod, y):
            await c.wait_type("meeting-ended", by=mod.id)
            await asyncio.wait_for(c.closed.wait(), 5)
        assert "ctl" not in server.app[HUB_KEY].rooms.rooms


async def test_raise_hand_queue_and_chat_with_bounded_history() -> None:
    async with clients("a", "b", "late", chat_history=3) as (_, _, (a, b, late)):
        await a.join("talk")
        await b.join("talk")
        await b.request({"type": "raise-hand", "raised": True})
        await a.request({"type": "raise-hand", "raised": True})
        assert (await b.wait(lambda m: m.get("type") == "hands" and len(m["hands"]) == 2)
                )["hands"] == [b.id, a.id]
        await b.request({"type": "raise-hand", "raised": False})
        await a.wait(lambda m: m.get("type") == "hands" and m["hands"] == [a.id])

        for i in range(5):
            await a.send({"type": "chat", "text": f"msg {i} <script>x</script>\x07"})
        message = await b.wait(lambda m: m.get("type") == "chat" and m["text"].startswith("msg 4"))
        assert message["text"] == "msg 4 <script>x</script>"  # control char gone, text kept
        assert (message["from"], message["name"], message["private"]) == (a.id, "a", False)
        assert (await a.request({"type": "chat", "text": "psst", "to": b.id}))["type"] == "ok"
        private = await a.wait(lambda m: m.get("type") == "chat" and m["text"] == "psst")
        assert private["private"] is True and private["to"] == b.id
        welcome = await late.join("talk")
        assert [m["text"][:5] for m in welcome["chat"]] == ["msg 2", "msg 3", "msg 4"]
        assert welcome["hands"] == [a.id]
        await b.wait(lambda m: m.get("type") == "chat" and m["text"] == "psst")
        await asyncio.sleep(0.2)
        assert not [m for m in late.received("chat") if m["text"] == "psst"]
        assert (await a.request({"type": "chat", "text": "   "}))["code"] == "bad-message"
        bad_target = await a.request({"type": "chat", "text": "x", "to": "p-nobody"})
        assert bad_target["code"] == "no-such-participant"


async def test_lobby_keeps_knockers_out_until_admitted() -> None:
    async with clients("mod", "member", "knocker", "denied") as (_, _, cs):
        mod, member, knocker, denied = cs
        await mod.join("lobby-room")
        await member.join("lobby-room")
        await mod.request({"type": "set-lobby", "enabled": True})
        await member.wait(lambda m: m.get("type") == "room-updated" and m["roomState"]["lobby"])
        waiting = await knocker.join("lobby-room")
        assert waiting["type"] == "lobby-waiting"
        knock = (await mod.wait_type("knock"))["knock"]
        assert knock == {"id": waiting["knock"], "name": "knocker"}
        assert not member.received("knock")  # only moderators see knocks

        # Crafted messages from the knocker get nothing.
        for crafted in (
            {"type": "chat", "text": "let me in"},
            {"type": "offer", "sdp": "v=0"},
            {"type": "raise-hand", "raised": True},
            {"type": "lobby-admit", "knock": waiting["knock"]},
            {"type": "mute", "audioMuted": True},
        ):
            assert (await knocker.request(crafted))["code"] == "not-joined", crafted
        assert (await knocker.join("lobby-room"))["code"] == "already-joined"
        await member.send({"type": "chat", "text": "secret"})
        await member.request({"type": "raise-hand", "raised": True})
        assert (await member.request({"type": "lobby-admit", "knock": waiting["knock"]})
                )["code"] == "not-moderator"
        await asyncio.sleep(0.2)
        leaked = {m["type"] for m in knocker.inbox} - {"lobby-waiting", "error"}
        assert not leaked, leaked
        assert not member.received("participant-joined")

        # Denied, with a message.
        second = await denied.join("lobby-room")
        await mod.request({"type": "lobby-deny", "knock": second["knock"], "message": "sorry"})
        refusal = await denied.wait_type("error", code="lobby-denied")
        assert refusal["message"] == "sorry"
        assert (await denied.request({"type": "chat", "text": "x"}))["code"] == "not-joined"

        # Admitted: a normal welcome with the room's state and history.
        await mod.request({"type": "lobby-admit", "knock": waiting["knock"]})
        welcome = await knocker.wait_type("welcome")
        assert welcome["roomState"]["lobby"] is True
        assert [m["text"] for m in welcome["chat"]] == ["secret"]
        await member.wait(lambda m: m.get("type") == "participant-joined"
                          and m["participant"]["id"] == welcome["participant"])
        removed = await mod.wait(lambda m: m.get("type") == "knock-removed"
                                 and m["knock"] == waiting["knock"])
        assert removed["reason"] == "admitted"
        assert (await mod.request({"type": "lobby-admit", "knock": "k-gone"})
                )["code"] == "no-such-knock"


async def test_password_errors_and_rate_limit() -> None:
    async with clients("mod", "a", "b", password_guesses_per_minute=3) as (_, _, (mod, a, b)):
        await mod.join("locked")
        await mod.request({"type": "set-password", "password": "hunter2"})
        assert (await a.join("locked"))["code"] == "password-required"
        assert (await a.join("locked", password="nope"))["code"] == "wrong-password"
        assert (await a.join("locked", password="nope2"))["code"] == "wrong-password"
        assert (await a.join("locked", password="nope3"))["code"] == "wrong-password"
        limited = await a.join("locked", password="hunter2")
        assert limited["code"] == "rate-limited"  # per-connection guesses used up
        assert (await b.join("locked", password="hunter2"))["type"] == "welcome"
        await mod.request({"type": "set-password", "password": None})
        assert (await b.wait(lambda m: m.get("type") == "room-updated")
                )["roomState"]["locked"] is False


async def test_room_server_lobby_and_message_limits() -> None:
    async with clients("a", "b", "c", "d", max_participants_per_room=2, max_rooms=1,
                       lobby_queue=1, messages_per_second=5, message_burst=5
                       ) as (_, _, (a, b, c, d)):
        await a.join("only")
        await b.join("only")
        assert (await c.join("only"))["code"] == "room-full"
        assert (await c.join("another"))["code"] == "server-full"
        await a.request({"type": "set-lobby", "enabled": True})
        assert (await c.join("only"))["type"] == "lobby-waiting"
        assert (await d.join("only"))["code"] == "lobby-full"
        await asyncio.sleep(1.0)
        for _ in range(12):
            await b.send({"type": "ping"})
        await b.wait(lambda m: m.get("code") == "rate-limited")
        assert not b.closed.is_set()  # refused, not disconnected


async def test_join_rate_per_address() -> None:
    async with clients(*[f"c{i}" for i in range(4)], joins_per_second_per_address=0.1,
                       join_burst_per_address=3) as (_, _, cs):
        replies = [await c.join("busy") for c in cs]
        assert [r["type"] for r in replies[:3]] == ["welcome"] * 3
        assert replies[3]["code"] == "rate-limited"


async def test_dropped_connection_resumes_same_participant_within_grace() -> None:
    async with clients("a", "b", resume_grace=2.0) as (server, http, (a, b)):
        await a.join("resume-room")
        welcome_b = await b.join("resume-room")
        secret = welcome_b["resume"]
        assert b.ws is not None
        b.ws._conn.transport.abort()  # type: ignore[union-attr]  # no close frame: lost network
        await asyncio.sleep(0.5)
        assert not a.received("participant-left")  # kept during the grace period
        again = await Client(http, server.ws, "b").connect()
        try:
            welcome = await again.join("resume-room", resume=secret)
            assert welcome["resumed"] is True and welcome["participant"] == welcome_b["participant"]
            assert [p["id"] for p in welcome["participants"]] == [a.id]
            assert (await again.request({"type": "ping"}))["type"] == "pong"
            joined = [m for m in a.received("participant-joined")
                      if m["participant"]["id"] == welcome["participant"]]
            assert len(joined) == 1  # the first join only: no ghost duplicate
            bad = await Client(http, server.ws, "x").connect()
            assert (await bad.join("resume-room", resume="nope"))["code"] == "bad-resume"
            await bad.close()
            # Dropped again and not resumed: gone after the grace period.
            assert again.ws is not None
            again.ws._conn.transport.abort()  # type: ignore[union-attr]
            left = await a.wait_type("participant-left", timeout=5, id=welcome["participant"])
            assert left["reason"] == "disconnected"
        finally:
            await again.close()


async def test_clean_close_removes_at_once() -> None:
    async with clients("a", "b") as (_, _, (a, b)):
        await a.join("quick")
        await b.join("quick")
        await b.close()
        left = await a.wait_type("participant-left", timeout=2, id=b.id)
        assert left["reason"] == "disconnected"


async def test_tokens_name_the_moderator_and_can_be_required() -> None:
    import time

    import jwt

    secret = "s3cret-" * 6
    claims = {"iss": "tertulia", "aud": "jitsi", "room": "*", "exp": int(time.time()) + 600,
              "context": {"user": {"name": "Dr. Token", "avatar": "https://a/x.png",
                                   "moderator": "true"}}}
    good = jwt.encode(claims, secret, algorithm="HS256")
    async with clients("first", "boss", "anon", token_secret=secret, allow_anonymous=False
                       ) as (_, _, (first, boss, anon)):
        assert (await anon.join("tok"))["code"] == "token-required"
        bad = jwt.encode(claims, "wrong-secret-" * 4, algorithm="HS256")
        assert (await anon.join("tok", token=bad))["code"] == "token-signature"
        expired = jwt.encode({**claims, "exp": int(time.time()) - 3600}, secret, algorithm="HS256")
        assert (await anon.join("tok", token=expired))["code"] == "token-expired"
        other_room = jwt.encode({**claims, "room": "elsewhere"}, secret, algorithm="HS256")
        assert (await anon.join("tok", token=other_room))["code"] == "token-wrong-room"
        plain = jwt.encode({**claims, "context": {"user": {"name": "Plain"}}}, secret,
                           algorithm="HS256")
        welcome = await first.join("tok", token=plain)
        assert welcome["role"] == "moderator"  # first in the room
        await first.request({"type": "set-password", "password": "pw"})
        await first.request({"type": "set-lobby", "enabled": True})
        # A moderator by token skips both the password and the lobby.
        welcome = await boss.join("tok", token=good)
        assert welcome["type"] == "welcome" and welcome["role"] == "moderator"
        seen = await first.wait_type("participant-joined")
        assert seen["participant"]["name"] == "Dr. Token"
        assert seen["participant"]["avatar"] == "https://a/x.png"


async def test_connections_per_address_are_capped() -> None:
    async with running_server(connections_per_address=3) as server, \
            aiohttp.ClientSession() as http:
        opened = [await http.ws_connect(server.ws) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.ws)
        assert refused.value.status == 429
        await opened[0].close()
        for _ in range(50):  # bounded: the server notices the close quickly
            try:
                opened.append(await http.ws_connect(server.ws))
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.05)
        assert len(opened) == 4 and not opened[-1].closed
        for ws in opened:
            await ws.close()
