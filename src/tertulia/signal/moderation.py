"""Moderator actions of a signalling session: lobby, password, roles, mutes, kicks, ending.

A mixin of :class:`tertulia.signal.session.Session`, which dispatches ``on_<type>`` for each
request and checks :data:`MODERATOR_ACTIONS` against the participant's role first.
"""

from __future__ import annotations

from tertulia.protocol.messages import ProtocolError, Request, clean_text
from tertulia.signal.hub import Hub
from tertulia.signal.rooms import MODERATOR, Knock, Participant, Room

MODERATOR_ACTIONS = {
    "lobby-admit", "lobby-deny", "set-lobby", "set-password", "grant-moderator",
    "mute-participant", "mute-all", "ask-unmute", "kick", "end-meeting",
}


class ModeratorActions:
    """The handlers of :data:`MODERATOR_ACTIONS`; only moderators reach them."""

    hub: Hub

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
