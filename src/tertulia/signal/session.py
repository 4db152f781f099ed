"""One signalling connection: joining (tokens, password, lobby, resume), media, controls.

Moderator actions live in moderation.py (a mixin), what sessions share in hub.py.

The WebSocket shell (app.py) feeds text frames to :meth:`Session.handle` and delivers what
lands in the session's queue. Everything here runs synchronously on the event loop; the only
timers are the resume grace periods, scheduled through ``Hub.call_later``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from tertulia.focus.focus import FocusError
from tertulia.protocol.messages import (
    ProtocolError,
    Request,
    clean_name,
    clean_text,
    parse_client_message,
)
from tertulia.signal.hub import Hub
from tertulia.signal.limits import AbuseMeter, TokenBucket
from tertulia.signal.moderation import MODERATOR_ACTIONS, ModeratorActions
from tertulia.signal.rooms import (
    MODERATOR,
    Knock,
    Participant,
    Room,
    chat_message,
    new_participant_id,
)
from tertulia.signal.sharding import check_room_param
from tertulia.signal.tokens import TokenError

log = logging.getLogger(__name__)

OPEN_BEFORE_JOIN = {"join", "ping", "leave"}


class Session(ModeratorActions):
    """One WebSocket client: at most one participant (or one knock), one offer."""

    def __init__(
        self,
        hub: Hub,
        address: str,
        send: Callable[[dict[str, Any]], None],
        close: Callable[[int], None],
        *,
        room_param: str | None = None,
        region: str | None = None,
    ) -> None:
        self.hub = hub
        self.address = address
        self.room_param = room_param  # the /ws?room= the front routed on
        self.region = region  # from the front's region header
        self.offering = False
        self._send = send
        self._close = close
        self.participant: Participant | None = None
        self.knock: tuple[Room, Knock] | None = None
        self.offered = False
        self._replied = False
        limits = hub.limits
        self.bucket = TokenBucket(limits.messages_per_second, limits.message_burst)
        self.guesses = TokenBucket(
            limits.password_guesses_per_minute / 60.0, limits.password_guesses_per_minute
        )
        self.abuse = AbuseMeter(threshold=int(limits.messages_per_second * 10 * 10))

    # -- plumbing -------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self._send(message)

    def disconnect(self) -> None:
        self._close(1000)

    def handle(self, text: str) -> None:
        now = self.hub.clock()
        counters = self.hub.counters
        counters["messages"] += 1
        if not self.bucket.allow(now):
            counters["rate_limited"] += 1
            if self.abuse.refused(now):
                log.warning("closing a flooding connection")
                log.debug("flooding connection from %s", self.address)
                self._close(1008)
                return
            self.send(ProtocolError("rate-limited", "too many messages; slow down").reply())
            return
        ref = None
        try:
            request = parse_client_message(text, self.hub.limits.max_message_bytes)
            ref = request.ref
            self._replied = False
            self.dispatch(request, now)
            if ref is not None and not self._replied:
                self.send({"type": "ok", "ref": ref})  # every request with an id is answered
        except ProtocolError as exc:
            if exc.code == "rate-limited":
                counters["rate_limited"] += 1
            elif exc.code.startswith("token-") or exc.code == "wrong-password":
                counters["auth_failures"] += 1
            self.send(exc.reply())
        except Exception:  # a bug must cost one request, not the session
            log.exception("internal error handling a client message")
            self.send(
                ProtocolError(
                    "internal-error", "the server failed to handle this request", ref
                ).reply()
            )

    def reply(self, request: Request, body: dict[str, Any]) -> None:
        if request.ref is not None:
            body["ref"] = request.ref
        self._replied = True
        self.send(body)

    def dispatch(self, request: Request, now: float) -> None:
        kind = request.type
        if kind == "ping":
            self.reply(request, {"type": "pong"})
            return
        if kind == "leave":
            self.close("left")
            self.send({"type": "bye"})
            return
        if kind == "join":
            self.join(request, now)
            return
        participant = self.participant
        if participant is None:
            raise ProtocolError("not-joined", "send 'join' first (and wait to be admitted)",
                                request.ref)
        room = self.hub.rooms.rooms[participant.room]
        if kind in MODERATOR_ACTIONS and not participant.is_moderator:
            raise ProtocolError("not-moderator", f"only moderators may {kind}", request.ref)
        handler = getattr(self, "on_" + kind.replace("-", "_"))
        handler(request, participant, room, now)

    # -- joining --------------------------------------------------------------------------

    def join(self, request: Request, now: float) -> None:
        hub = self.hub
        if self.participant is not None or self.knock is not None:
            raise ProtocolError("already-joined", "this session already joined a room",
                                request.ref)
        room_name: str = request.data["room"]
        check_room_param(self.room_param, room_name, required=self.hub.require_room_param,
                         ref=request.ref)
        if self.region is None and request.get("region"):
            self.region = clean_text(request.get("region"), 64) or None
        if request.get("resume"):
            self._resume(request, room_name)
            return
        if not hub.join_limiter.allow(self.address, now):
            raise ProtocolError("rate-limited", "too many joins from your address", request.ref)
        try:
            identity = hub.tokens.admit(request.get("token"), room_name, time.time())
        except TokenError as exc:
            raise ProtocolError(exc.code, exc.message, request.ref) from exc
        room = hub.rooms.rooms.get(room_name)
        if room is None and len(hub.rooms.rooms) >= hub.limits.max_rooms:
            raise ProtocolError("server-full", "this server has no room for more meetings",
                                request.ref)
        # A token's display name wins over the one the client typed (as in Jitsi).
        name = identity.name if identity and identity.name else request.data["name"]
        participant = Participant(
            new_participant_id(),
            clean_text(name, 64) or "Guest",
            bool(request.get("audioMuted", False)),
            bool(request.get("videoMuted", False)),
            self.send,
            self.disconnect,
            avatar=identity.avatar if identity else None,
        )
        by_token = identity is not None and identity.moderator
        if room is not None and not by_token:
            password = request.get("password")
            guessing = password is not None and room.password is not None
            if guessing and not (
                self.guesses.allow(now) and hub.guess_limiter.allow(self.address, now)
            ):
                raise ProtocolError("rate-limited", "too many password attempts; wait a minute",
                                    request.ref)
            passed = room.password is not None and room.password_matches(password)
            if room.lobby and not passed:
                if password is not None and room.password is not None:
                    raise ProtocolError("wrong-password", "that password is not right",
                                        request.ref)
                self._knock(request, room, participant)
                return
            if room.password is not None and not passed:
                if password is None:
                    raise ProtocolError("password-required", "this meeting needs a password",
                                        request.ref)
                raise ProtocolError("wrong-password", "that password is not right",
                                    request.ref)
        if room is not None and len(room.participants) >= hub.limits.max_participants_per_room:
            raise ProtocolError("room-full", "this meeting is full", request.ref)
        self._enter(room_name, participant, request.ref, moderator=by_token)

    def _enter(self, room_name: str, participant: Participant, ref: Any, *,
               moderator: bool = False, resumed: bool = False) -> None:
        rooms = self.hub.rooms
        if not resumed:
            if moderator:
                participant.role = MODERATOR
            room = rooms.join(room_name, participant)
            self.hub.counters["joins"] += 1
            log.info("participant joined", extra={"room": room_name,
                                                  "participant": participant.id})
        else:
            room = rooms.rooms[room_name]
            self.hub.counters["resumes"] += 1
        self.participant = participant
        self.knock = None
        body: dict[str, Any] = {
            "type": "welcome",
            "room": room.name,
            "participant": participant.id,
            "participants": [p.public() for p in room.participants.values()
                             if p is not participant],
            "slots": self.hub.slots,
            "role": participant.role,
            "resume": participant.resume_secret,
            "resumed": resumed,
            "roomState": room.state(),
            "hands": list(room.hands),
            "chat": list(room.chat),
            "you": participant.public(),
            "forcedMute": sorted(participant.forced_mute),
            "iceServers": self.hub.ice_servers(participant.id),
        }
        if self.hub.shard_id:
            body["shard"] = self.hub.shard_id
        if ref is not None:
            body["ref"] = ref
        self._replied = True
        self.send(body)
        if participant.is_moderator:
            for knock in room.knocks.values():
                self.send({"type": "knock", "knock": {"id": knock.id, "name": knock.name}})

    def _resume(self, request: Request, room_name: str) -> None:
        participant = self.hub.rooms.resumable(request.data["resume"])
        if participant is None or participant.room != room_name:
            raise ProtocolError("bad-resume", "nothing to resume; join again", request.ref)
        old_disconnect = participant.disconnect
        participant.attach(self.send, self.disconnect)
        old_disconnect()  # an older connection still attached is superseded
        self._enter(room_name, participant, request.ref, resumed=True)

    def _knock(self, request: Request, room: Room, participant: Participant) -> None:
        if len(room.knocks) >= self.hub.limits.lobby_queue:
            raise ProtocolError("lobby-full", "too many people are waiting; try later",
                                request.ref)
        knock_id = "k-" + secrets.token_hex(5)

        def admit() -> None:
            room.knocks.pop(knock_id, None)
            room.to_moderators({"type": "knock-removed", "knock": knock_id,
                                "reason": "admitted"})
            if room.name in self.hub.rooms.rooms:
                self._enter(room.name, participant, request.ref)

        def deny(message: str | None) -> None:
            room.knocks.pop(knock_id, None)
            self.knock = None
            room.to_moderators({"type": "knock-removed", "knock": knock_id,
                                "reason": "denied"})
            error = ProtocolError("lobby-denied", message or "a moderator declined your request",
                                  request.ref)
            self.send(error.reply())

        self.hub.counters["knocks"] += 1
        knock = Knock(knock_id, participant.name, self.send, admit, deny)
        room.knocks[knock_id] = knock
        self.knock = (room, knock)
        self.reply(request, {"type": "lobby-waiting", "knock": knock_id})
        room.to_moderators({"type": "knock", "knock": {"id": knock_id, "name": knock.name}})

    # -- media and presence ---------------------------------------------------------------

    def on_offer(self, request: Request, me: Participant, room: Room, now: float) -> None:
        # After a bridge failure the focus has forgotten the media: a fresh offer is welcome.
        if self.offering or (self.offered and self.hub.focus.has_media(room.name, me.id)):
            raise ProtocolError("already-offered", "this session already sent its offer",
                                request.ref)
        self.offering = True
        self._replied = True  # the answer (or an error) follows when the bridge answers
        task = asyncio.get_running_loop().create_task(self._offer(request, me, room))
        self.hub.tasks.add(task)
        task.add_done_callback(self.hub.tasks.discard)

    async def _offer(self, request: Request, me: Participant, room: Room) -> None:
        focus = self.hub.focus
        try:
            allocation = await focus.offer(room.name, me.id, request.data["sdp"],
                                           blocked=frozenset(me.forced_mute), region=self.region)
        except FocusError as exc:
            self.send(ProtocolError(exc.code, exc.message, request.ref).reply())
            return
        except Exception:
            log.exception("internal error placing media")
            self.send(ProtocolError("internal-error", "the server failed to place your media",
                                    request.ref).reply())
            return
        finally:
            self.offering = False
        if self.hub.rooms.find(room.name, me.id) is not me:
            focus.leave(room.name, me.id)  # left while the bridge was answering
            return
        self.offered = True
        me.has_media = True
        self.reply(request, {"type": "answer", "sdp": allocation.answer,
                             "endpoint": allocation.endpoint_id,
                             "bridgeChannel": allocation.channel_path})

    def on_mute(self, request: Request, me: Participant, room: Room, now: float) -> None:
        for field_name, kind in (("audioMuted", "audio"), ("videoMuted", "video")):
            value = request.get(field_name)
            if value is None:
                continue
            setattr(me, "audio_muted" if kind == "audio" else "video_muted", value)
            if not value and kind in me.forced_mute:
                me.forced_mute.discard(kind)  # unmuting oneself lifts a moderator's mute
                self.hub.focus.set_blocked(room.name, me.id, kind, False)
        self.hub.rooms.update(me)

    def on_set_name(self, request: Request, me: Participant, room: Room, now: float) -> None:
        name = clean_name(request.data["name"])
        if not name:
            raise ProtocolError("bad-message", "the name is empty", request.ref)
        me.name = name
        self.hub.rooms.update(me, include_self=True)

    def on_chat(self, request: Request, me: Participant, room: Room, now: float) -> None:
        text = clean_text(request.data["text"], self.hub.limits.max_chat_chars)
        if not text:
            raise ProtocolError("bad-message", "chat text is empty", request.ref)
        to_id = request.get("to")
        if to_id is None:
            message = chat_message(me, text, None)
            room.add_chat(message)
            room.broadcast(message)
            return
        target = room.participants.get(to_id)
        if target is None:
            raise ProtocolError("no-such-participant", "no such participant", request.ref)
        message = chat_message(me, text, target)
        target.outbox(message)
        if target is not me:
            me.outbox(message)

    def on_raise_hand(self, request: Request, me: Participant, room: Room, now: float) -> None:
        if room.set_hand(me, request.data["raised"]):
            room.broadcast(room.hands_message())
            self.hub.rooms.update(me, include_self=True)

    # -- closing --------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Leave at once (clean close, `leave`, kick); idempotent."""
        if self.knock is not None:
            room, knock = self.knock
            self.knock = None
            if room.knocks.pop(knock.id, None) is not None:
                room.to_moderators({"type": "knock-removed", "knock": knock.id,
                                    "reason": "left"})
            self.hub.rooms.forget_if_empty(room)
        participant = self.participant
        self.participant = None
        if participant is None or participant.outbox != self.send:
            return  # never joined, or a newer connection resumed this participant
        self.hub.focus.leave(participant.room, participant.id)
        self.hub.rooms.leave(participant, reason)
        log.info("participant left", extra={"room": participant.room,
                                            "participant": participant.id, "reason": reason})

    def drop(self) -> None:
        """The connection died without a close frame: keep the participant for the grace."""
        participant = self.participant
        if participant is None or participant.outbox != self.send:
            self.close("disconnected")
            return
        self.participant = None
        participant.detach(self.hub.clock())
        since = participant.detached_since
        rooms, focus = self.hub.rooms, self.hub.focus

        def expire() -> None:
            if participant.detached_since == since:
                focus.leave(participant.room, participant.id)
                rooms.leave(participant, "disconnected")

        self.hub.call_later(self.hub.limits.resume_grace, expire)

