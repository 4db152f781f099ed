"""A conference on this bridge: its endpoints, who sits in whose receive slots, and routing.

Media path: an endpoint's decrypted RTP → its source (by payload type and SSRC) → the slot
streams subscribed to that source (the fan-out table) → each receiver's transport. RTCP from a
receiver about a slot stream is translated back to the source that currently fills the slot
(conference_rtcp.py).
"""

from __future__ import annotations

import logging
import random

from tertulia.bridge import bandwidth, uplink
from tertulia.bridge.bwe import RateMeter
from tertulia.bridge.conference_rtcp import ConferenceRtcp
from tertulia.bridge.constraints import videos_in_order
from tertulia.bridge.endpoint import LIVE_WINDOW, Endpoint, SendingMedia
from tertulia.bridge.relay import RelaySink, fold_height
from tertulia.bridge.rtp.packet import header_fields, parse_extensions, payload_offset
from tertulia.bridge.rtp.rtcp import (
    Pli,
    ReceiverReport,
)
from tertulia.bridge.rtp.speaker import DominantSpeaker
from tertulia.bridge.rtp.temporal import TemporalMeter
from tertulia.bridge.rtp.vp8 import is_keyframe_start, keyframe_size
from tertulia.bridge.subscription import SlotStream
from tertulia.bridge.temporal_layers import max_tid

log = logging.getLogger(__name__)

# Keyframe requests to one sender are spaced at least this far apart (seconds); a waiting
# subscriber re-asks after KEYFRAME_RETRY in case the request or the keyframe was lost.
KEYFRAME_MIN_INTERVAL = 0.3
KEYFRAME_RETRY = 0.8
# A slot waiting for a keyframe of its target layer keeps that target this long: changing it
# on every estimate wobble could mean it never gets a keyframe of the layer it waits for.
TARGET_HOLD = 2.0


class Conference(ConferenceRtcp):
    """Endpoints of one meeting on this bridge and the routing among them."""

    def __init__(self, conference_id: str, *, bridge_ssrc: int | None = None) -> None:
        self.id = conference_id
        self.endpoints: dict[str, Endpoint] = {}
        self.bridge_ssrc = bridge_ssrc or random.randrange(1, 1 << 32)
        # sender id -> role -> list of (receiver, slot stream) currently showing that sender
        self._fanout: dict[str, dict[str, list[tuple[Endpoint, SlotStream]]]] = {}
        # endpoints sharing their screen, the most recent last: the screen slots show it
        self.sharers: list[str] = []
        self.speaker = DominantSpeaker()
        self.now = 0.0  # the latest time seen (layer liveness is judged against it)
        # relays to the conference's other bridges, by peer bridge id (bridge/relay_link.py)
        self.relays: dict[str, RelaySink] = {}

    # -- membership and slots ------------------------------------------------------------

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.id] = endpoint
        self.speaker.add(endpoint.id)
        self.assign_slots()

    def remove(self, endpoint_id: str) -> Endpoint | None:
        endpoint = self.endpoints.pop(endpoint_id, None)
        if endpoint is None:
            return None
        for pair in endpoint.slots:
            for stream in pair:
                stream.detach()
        if endpoint_id in self.sharers:
            self.sharers.remove(endpoint_id)
        self.speaker.remove(endpoint_id)
        self.assign_slots()
        return endpoint

    def set_sharing(self, endpoint: Endpoint, active: bool, now: float) -> None:
        """The client turned its screen share on or off (bridge channel `sharing`)."""
        endpoint.sharing = active
        if endpoint.id in self.sharers:
            self.sharers.remove(endpoint.id)
        if active:
            self.sharers.append(endpoint.id)
        self.assign_slots()
        if active:
            self.request_keyframe(endpoint, now, "screen")

    def assign_slots(self) -> None:
        """Give every sender a slot at every receiver, keeping existing places stable.

        Senders are placed in speaking order (then join order) into the lowest free slot; a
        sender that left frees its slot, which the next sender without a slot then takes.
        Receivers whose mapping changed are told over the bridge channel.
        """
        order = self.speaking_order()
        for receiver in self.endpoints.values():
            before = list(receiver.occupants)
            present = {eid for eid in order if eid != receiver.id}
            occupants = [o if o in present else None for o in receiver.occupants]
            seated = {o for o in occupants if o is not None}
            for eid in order:
                if eid == receiver.id or eid in seated:
                    continue
                try:
                    free = occupants.index(None)
                except ValueError:
                    break
                occupants[free] = eid
                seated.add(eid)
            receiver.occupants = occupants
            for index, occupant in enumerate(occupants):
                audio, video = receiver.slots[index]
                self._attach(receiver, audio, occupant, "audio")
                self._attach(receiver, video, occupant, "video")
            screen_before = receiver.screen_occupant
            sharer = next((e for e in reversed(self.sharers) if e != receiver.id), None)
            receiver.screen_occupant = sharer if receiver.screen_slot is not None else None
            if receiver.screen_slot is not None:
                self._attach(receiver, receiver.screen_slot, sharer, "screen")
            sharers_changed = receiver.sharers != self.sharers
            receiver.sharers = list(self.sharers)
            if occupants != before or receiver.screen_occupant != screen_before or sharers_changed:
                receiver.notify(receiver.slots_message())
        self._rebuild_fanout()
        for receiver in self.endpoints.values():
            self.update_video_selection(receiver, None)

    def speaking_order(self) -> list[str]:
        """Endpoints, most recent dominant speakers first, then in join order."""
        ranked = [e for e in self.speaker.speaking_order() if e in self.endpoints]
        return list(dict.fromkeys([*ranked, *self.endpoints]))

    def speaker_tick(self, now: float) -> bool:
        """Run speaker decisions; on a change, seat the new speaker everywhere (evicting the
        least recent speaker where slots are full), refresh last-N and tell every client."""
        change = self.speaker.tick(now)
        if change is None:
            return False
        order = self.speaking_order()
        rank = {e: i for i, e in enumerate(order)}
        for receiver in self.endpoints.values():
            seated = receiver.occupants
            if (not seated or change.current == receiver.id or change.current in seated
                    or None in seated):  # no slots (a relayed participant), or room left
                continue
            evict = max(range(len(seated)), key=lambda i: rank.get(seated[i] or "", -1))
            seated[evict] = None
        self.assign_slots()
        for receiver in self.endpoints.values():
            self.update_video_selection(receiver, now)
            receiver.notify(self.speaker_message())
        return True

    def speaker_message(self) -> dict[str, object]:
        return {
            "type": "dominant-speaker",
            "participant": self.speaker.dominant,
            "order": self.speaking_order(),
        }

    def update_video_selection(self, receiver: Endpoint, now: float | None) -> None:
        """Recompute which camera videos ``receiver`` gets from its constraints (last-N, max
        height 0 for hidden tiles); a video that comes back restarts on a keyframe."""
        seated = {o for o in receiver.occupants if o is not None}
        order = [e for e in self.speaking_order() if e in seated]
        receiver.wanted_videos = videos_in_order(receiver.constraints, order)
        chosen = set(receiver.wanted_videos) - receiver.bwe_suspended
        if chosen == receiver.videos:
            return
        for index, occupant in enumerate(receiver.occupants):
            if occupant is None:
                continue
            was, now_in = occupant in receiver.videos, occupant in chosen
            if was != now_in:
                receiver.slots[index][1].started = False  # resume only on a keyframe
            if now_in and not was and now is not None:
                sender = self.endpoints.get(occupant)
                if sender is not None:
                    self.request_keyframe(sender, now)
        receiver.videos = chosen

    def _attach(
        self, receiver: Endpoint, stream: SlotStream, occupant: str | None, role: str
    ) -> None:
        sender = self.endpoints.get(occupant) if occupant else None
        media = sender.sending.get(role) if sender else None
        ssrc = None
        if sender is not None and media is not None:
            ssrc = (self.choose_layer(receiver, media, sender.id) if media.layered
                    else media.current_ssrc)
        if sender is None or media is None or ssrc is None:
            stream.detach()
            return
        stream.attach(sender.id, ssrc, media.extmap)
        stream.role = role
        stream.set_max_tid(max_tid(receiver, media, sender.id))

    def _rebuild_fanout(self) -> None:
        fanout: dict[str, dict[str, list[tuple[Endpoint, SlotStream]]]] = {}
        for receiver in self.endpoints.values():
            streams = [stream for pair in receiver.slots for stream in pair]
            if receiver.screen_slot is not None:
                streams.append(receiver.screen_slot)
            for stream in streams:
                if stream.source is None:
                    continue
                sender_id = stream.source[0]
                fanout.setdefault(sender_id, {}).setdefault(stream.role, []).append(
                    (receiver, stream)
                )
        self._fanout = fanout

    def on_connected(self, endpoint: Endpoint, now: float) -> None:
        """DTLS is up: ask every sender it will watch for a keyframe (new subscriber)."""
        for occupant in endpoint.occupants:
            sender = self.endpoints.get(occupant) if occupant else None
            if sender is not None:
                self.request_keyframe(sender, now)
        sharer = self.endpoints.get(endpoint.screen_occupant or "")
        if sharer is not None:
            self.request_keyframe(sharer, now, "screen")

    # -- RTP ------------------------------------------------------------------------------

    def on_rtp(
        self, sender: Endpoint, plain: bytes, now: float, arrival: float | None = None
    ) -> None:
        _marker, pt, seq, ts, ssrc = header_fields(plain)
        extensions = parse_extensions(plain)
        twcc_id = sender.twcc_ext_id
        if twcc_id is not None:  # every packet, probes and retransmissions included
            for ext_id, value in extensions:
                if ext_id == twcc_id and len(value) == 2:  # draft-holmer-01 §2
                    sender.twcc.on_packet(
                        int.from_bytes(value, "big"), now if arrival is None else arrival
                    )
                    break
        media = sender.media_by_ssrc.get(ssrc)
        rtx = False
        if media is None:
            if ssrc in sender.rtx_media or sender.learn_rtx(ssrc, pt, extensions):
                repaired = uplink.repair(sender, plain, pt, ssrc)  # RFC 4588 §4
                if repaired is None:
                    return
                plain, media = repaired
                _marker, pt, seq, ts, ssrc = header_fields(plain)
                rtx = True
            else:
                media = sender.identify(ssrc, pt, extensions)
        if media is None or media.payload_type != pt:
            sender.stats.drop("unknown-payload-type" if media else "unidentified-ssrc")
            return
        if media.nack and not uplink.on_media(sender, media, ssrc, seq, now,
                                              self.bridge_ssrc, rtx):
            return  # a retransmission of nothing missing
        if rtx:
            sender.stats.rtx_received += 1
        payload_at = payload_offset(plain)
        if plain[0] & 0x20 and plain[-1] >= len(plain) - payload_at:
            # Padding only (RFC 3550 §5.1: the last octet counts the padding): a sender's
            # bandwidth probe. Chrome sends these on a layer's own SSRC when RTX is not
            # negotiated on what it sends, also on a layer it has paused. Its arrival is
            # recorded above for the uplink estimate; forwarding it would spend receivers'
            # links on nothing, and counting it would make a paused layer look alive.
            sender.stats.padding_received += 1
            return
        idle = now - media.last_packet
        media.last_packet = now
        payload = plain[payload_at:]
        if media.kind == "video":
            meter = media.rate.get(ssrc)
            if meter is None:
                meter = media.rate[ssrc] = RateMeter()
            meter.add(len(plain))
            temporal = media.temporal.get(ssrc)
            if temporal is None:
                temporal = media.temporal[ssrc] = TemporalMeter()
            temporal.add(payload, len(plain))  # once per packet, whoever receives it
        if media.blocked:
            sender.stats.drop("blocked-by-moderator")
            return
        for relay in self.relays.values():  # every local source, every layer, once per relay
            relay.forward_rtp(sender, media, ssrc, plain, now)
        level_id = media.audio_level_id
        if level_id is not None:
            for ext_id, value in extensions:
                if ext_id == level_id and value:
                    self.speaker.level(sender.id, value[0] & 0x7F, now)  # RFC 6464 §3
                    break
        if media.layered:
            if now - media.last_seen.get(ssrc, -1e9) >= LIVE_WINDOW:
                media.live_since[ssrc] = now  # its rate is measured from here (settled())
            media.last_seen[ssrc] = now
            if media.current_ssrc is None or ssrc not in media.layer_height:
                self.now = now
                self._new_layer(sender, media, ssrc, payload, now)
            elif idle >= LIVE_WINDOW:
                self._resumed(sender, media, now)
        elif media.current_ssrc != ssrc:
            self._new_source(sender, media, ssrc, now)
        subscribers = self._fanout.get(sender.id, {}).get(media.role)
        if not subscribers:
            return
        camera = media.role == "video"
        for receiver, stream in subscribers:
            if not receiver.connected or (camera and sender.id not in receiver.videos):
                continue
            forwarded = stream.forward(plain, ssrc, seq, ts, extensions, payload, now)
            if forwarded is None:
                if (
                    now - media.last_keyframe_request > KEYFRAME_RETRY
                    and stream.waiting_for_keyframe
                ):
                    self.request_keyframe(sender, now, media.role, stream.target)
                continue
            receiver.send_rtp(forwarded.header, stream, forwarded.seq, now,
                              stamped=forwarded.stamped, payload=forwarded.payload,
                              twcc_at=forwarded.twcc_at)

    def _new_layer(
        self, sender: Endpoint, media: SendingMedia, ssrc: int, payload: bytes, now: float
    ) -> None:
        """A simulcast layer started, or showed its size for the first time (its keyframe):
        layer choices may change."""
        size = keyframe_size(payload) if is_keyframe_start(payload) else None
        if size is not None:
            media.layer_height[ssrc] = size[1]
        first = media.current_ssrc is None
        if first:
            media.current_ssrc = ssrc  # any layer: keyframe requests default to it
        if first or size is not None:
            self.assign_slots()
            if first:
                self.request_keyframe(sender, now, media.role)

    def choose_layer(self, receiver: Endpoint, media: SendingMedia, sender_id: str
                     ) -> int | None:
        """The simulcast layer a receiver should get: the highest one (of those sending now)
        whose height fits the receiver's max height for that sender; else the lowest."""
        layers = media.layers(self.now)
        if not layers:
            return None
        pick = receiver.allocation.get(sender_id) if media.role == "video" else None
        if pick is not None and pick[0] in layers:
            return pick[0]
        limit = receiver.constraints.max_height(sender_id) if media.role == "video" else -1
        if limit < 0:
            return layers[-1]
        fitting = [s for s in layers if media.layer_height.get(s, limit + 1) <= limit]
        return fitting[-1] if fitting else layers[0]

    def sender_constraints(self) -> None:
        """Layer suspension: tell each simulcast sender the largest height anyone wants of
        its camera (-1 = no limit, 0 = nobody watches), so it can stop encoding the rest."""
        for sender in self.endpoints.values():
            media = sender.sending.get("video")
            if media is None or not media.layered:
                continue
            wanted = 0
            for receiver in self.endpoints.values():
                # what receivers want by their constraints and last-N; not what their link
                # carries now, or probing could never bring a suspended layer back
                if receiver is sender or sender.id not in receiver.wanted_videos:
                    continue
                limit = receiver.constraints.max_height(sender.id)
                wanted = -1 if limit < 0 or wanted < 0 else max(wanted, limit)
            for relay in self.relays.values():  # the far bridge's receivers, as one receiver
                wanted = fold_height(wanted, relay.max_height(sender.id))
            if wanted != sender.max_height_wanted:
                sender.max_height_wanted = wanted
                sender.notify({"type": "sender-constraints", "maxHeight": wanted})

    def refresh_layers(self, now: float) -> None:
        """Re-pick layers (a layer stopped or came back, constraints changed); a slot moving
        to another layer asks the sender for a keyframe of it."""
        self.now = now
        for endpoint in self.endpoints.values():
            video = endpoint.sending.get("video")
            if video is not None:
                for meter in video.rate.values():
                    meter.tick(now)
                for temporal in video.temporal.values():
                    temporal.tick(now)
            endpoint.send_rate.tick(now)
            endpoint.audio_rate.tick(now)
        for receiver in self.endpoints.values():
            if bandwidth.allocate_receiver(self, receiver, now):
                self.update_video_selection(receiver, now)
        self.sender_constraints()
        for receiver in self.endpoints.values():
            streams = [pair[1] for pair in receiver.slots]
            if receiver.screen_slot is not None:
                streams.append(receiver.screen_slot)
            for stream in streams:
                sender = self.endpoints.get(stream.source[0]) if stream.source else None
                media = sender.sending.get(stream.role) if sender else None
                if sender is None or media is None:
                    continue
                stream.set_max_tid(max_tid(receiver, media, sender.id))
                if not media.layered:
                    continue
                target = self.choose_layer(receiver, media, sender.id)
                if target is not None and target != stream.target:
                    if stream.waiting_for_keyframe and now - stream.target_since < TARGET_HOLD:
                        continue  # let the keyframe asked for arrive before changing again
                    stream.target = target
                    stream.target_since = now
                    self.request_keyframe(sender, now, media.role, target)

    def _resumed(self, sender: Endpoint, media: SendingMedia, now: float) -> None:
        """A camera that sent nothing for a while sends again (it was paused because nobody
        watched: sender_constraints). A receiver that joined meanwhile found no live layer and
        its slot was left detached: attach it now, or it would wait for the next change of
        seats."""
        log.debug("endpoint %s %s resumed", sender.id, media.role)
        self.now = now
        self.assign_slots()

    def _new_source(self, sender: Endpoint, media: SendingMedia, ssrc: int, now: float) -> None:
        log.debug("endpoint %s %s source is now ssrc %d", sender.id, media.role, ssrc)
        media.current_ssrc = ssrc
        self.assign_slots()  # re-attaches every slot stream showing this sender
        if media.kind == "video":
            self.request_keyframe(sender, now, media.role)

    def request_keyframe(
        self, sender: Endpoint, now: float, role: str = "video", ssrc: int | None = None
    ) -> bool:
        """Send a PLI (RFC 4585 §6.3.1) to ``sender`` for its camera or screen (or one of its
        simulcast layers), throttled."""
        media = sender.sending.get(role)
        if media is None or media.current_ssrc is None or not sender.connected:
            return False
        ssrc = ssrc if ssrc is not None else media.current_ssrc
        if now - media.last_keyframe_request < KEYFRAME_MIN_INTERVAL:
            return False
        media.last_keyframe_request = now
        media.keyframe_requests += 1
        # RFC 3550 §6.1: compound RTCP starts with a report; an empty RR suffices.
        sender.send_rtcp(
            [
                ReceiverReport(ssrc=self.bridge_ssrc, reports=[]),
                Pli(sender_ssrc=self.bridge_ssrc, media_ssrc=ssrc),
            ]
        )
        return True
