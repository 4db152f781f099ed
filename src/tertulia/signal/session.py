"""One signalling connection: joining (tokens, password, lobby, resume), media, controls.

The WebSocket shell (app.py) feeds text frames to :meth:`Session.handle` and delivers what
lands in the session's queue. Everything here runs synchronously on the event loop; the only
timers are the resume grace periods, scheduled through ``Hub.call_later``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tertulia.focus.focus import Focus, FocusError
from tertulia.protocol.messages import (
    ProtocolError,
    Request,
    clean_name,
    clean_text,
    parse_client_message,
)
from tertulia.signal.limits import AbuseMeter, KeyedLimiter, Limits, TokenBucket
from tertulia.signal.rooms import (
    MODERATOR,
    Knock,
    Participant,
    Room,
    Rooms,
    chat_message,
    new_participant_id,
)
from tertulia.signal.sharding import check_room_param
from tertulia.signal.tokens import TokenError, TokenVerifier

log = logging.getLogger(__name__)

MODERATOR_ACTIONS = {
    "lobby-admit", "lobby-deny", "set-lobby", "set-password", "grant-moderator",
    "mute-participant", "mute-all", "ask-unmute", "kick", "end-meeting",
}
OPEN_BEFORE_JOIN = {"join", "ping", "leave"}


@dataclass
class Hub:
    """What all sessions of one signal server share."""

    rooms: Rooms
    focus: Focus
    limits: Limits
    tokens: TokenVerifier
    slots: int
    call_later: Callable[[float, Callable[[], None]], Any]
    clock: Callable[[], float] = time.monotonic
    join_limiter: KeyedLimiter = field(init=False)
    guess_limiter: KeyedLimiter = field(init=False)
    # open connections' close callbacks, so shutdown can close them all at once
    connections: dict[int, Callable[[int], None]] = field(default_factory=dict)
    # joins, messages, rate_limited, auth_failures, knocks, resumes (for /metrics)
    counters: Counter[str] = field(default_factory=Counter)
    per_address: Counter[str] = field(default_factory=Counter)  # open WebSockets by address
    # participant id -> RTCIceServer dicts for its welcome (TURN credentials; see turn.py)
    ice_servers: Callable[[str], list[dict[str, Any]]] = field(default=lambda _pid: [])
    # Sharding (docs/operations.md): a shard refuses joins whose room differs from the /ws
    # URL's `room` parameter, which the front hashes on; a shard also requires the parameter.
    require_room_param: bool = False
    region_header: str = "X-Proxy-Region"
    shard_id: str = ""  # named in `welcome` when set (a shard of a cluster)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # offers waiting on a bridge

    def __post_init__(self) -> None:
        self.join_limiter = KeyedLimiter(
            self.limits.joins_per_second_per_address, self.limits.join_burst_per_address
        )
        self.guess_limiter = KeyedLimiter(
            self.limits.password_guesses_per_minute_per_address / 60.0,
            self.limits.password_guesses_per_minute_per_address,
        )


class Session:
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

    # -- moderator actions ----------------------------------------------------------------

    def _target(self, request: Request, room: Room) -> Participant:
        target = room.participants.get(request.data["participant"])
        if target is None:
            raise ProtocolError("no-such-participant", "no such participant", request.ref)
        return target

    def _knock_of(self, request: Request, room: Room) -> Knock:
        knock = room.knocks.get(request.data["knock"])
        if knock is None:
            raise ProtocolError("no-such-knock", "nobody is waiting with that id", request.ref)
        return knock

    def on_lobby_admit(self, request: Request, me: Participant, room: Room, now: float) -> None:
        self._knock_of(request, room).admit()

    def on_lobby_deny(self, request: Request, me: Participant, room: Room, now: float) -> None:
        message = request.get("message")
        self._knock_of(request, room).deny(clean_text(message, 200) if message else None)

    def on_set_lobby(self, request: Request, me: Participant, room: Room, now: float) -> None:
        room.lobby = request.data["enabled"]
        room.broadcast({"type": "room-updated", "roomState": room.state()})
        if not room.lobby:
            for knock in list(room.knocks.values()):
                knock.admit()

    def on_set_password(self, request: Request, me: Participant, room: Room, now: float) -> None:
        password = request.data["password"]
        if password is not None and not password:
            raise ProtocolError("bad-message", "use null to clear the password", request.ref)
        room.password = password
        room.broadcast({"type": "room-updated", "roomState": room.state()})

    def on_grant_moderator(self, request: Request, me: Participant, room: Room,
                           now: float) -> None:
        target = self._target(request, room)
        if not target.is_moderator:
            target.role = MODERATOR
            self.hub.rooms.update(target, include_self=True)
            for knock in room.knocks.values():
                target.outbox({"type": "knock", "knock": {"id": knock.id, "name": knock.name}})

    def _force_mute(self, target: Participant, kind: str, room: Room, by: str) -> None:
        target.forced_mute.add(kind)
        setattr(target, "audio_muted" if kind == "audio" else "video_muted", True)
        self.hub.focus.set_blocked(room.name, target.id, kind, True)
        target.outbox({"type": "muted-by-moderator", "kind": kind, "by": by})
        self.hub.rooms.update(target, include_self=True)

    def on_mute_participant(self, request: Request, me: Participant, room: Room,
                            now: float) -> None:
        self._force_mute(self._target(request, room), request.data["kind"], room, me.id)

    def on_mute_all(self, request: Request, me: Participant, room: Room, now: float) -> None:
        for target in list(room.participants.values()):
            if target is not me:
                self._force_mute(target, request.data["kind"], room, me.id)

    def on_ask_unmute(self, request: Request, me: Participant, room: Room, now: float) -> None:
        message = {"type": "unmute-requested", "by": me.id}
        if request.get("participant") is not None:
            self._target(request, room).outbox(message)
        else:
            room.broadcast(message, exclude=me.id)

    def on_kick(self, request: Request, me: Participant, room: Room, now: float) -> None:
        target = self._target(request, room)
        message = request.get("message")
        target.outbox({"type": "kicked", "by": me.id,
                       "message": clean_text(message, 200) if message else None})
        disconnect = target.disconnect
        self.hub.focus.leave(room.name, target.id)
        self.hub.rooms.leave(target, "kicked")
        disconnect()

    def on_end_meeting(self, request: Request, me: Participant, room: Room, now: float) -> None:
        for knock in list(room.knocks.values()):
            knock.deny("the meeting has ended")
        for target in list(room.participants.values()):
            target.outbox({"type": "meeting-ended", "by": me.id})
        for target in list(room.participants.values()):
            disconnect = target.disconnect
            self.hub.focus.leave(room.name, target.id)
            self.hub.rooms.leave(target, "meeting-ended")
            disconnect()

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

