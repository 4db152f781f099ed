"""Feedback around a layer switch, and under congestion (bridge/conference.py, sender.py):
a receiver's key frame request names the layer it gets, NACKs for the layer it left are not
answered, retransmissions stay within the estimate, and what waits in the pacer of the old
layer is dropped when the slot switches."""

from __future__ import annotations

from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import parse_constraints
from tertulia.bridge.rtp.packet import RtpPacket
from tertulia.bridge.rtp.rtcp import GenericNack, Pli
from tertulia.bridge.sender import RTX_WINDOW
from tests.unit.golden import VIDEO, load, rid_ssrcs
from tests.unit.test_conference import CHROME_SIMULCAST, Client, as_sender_pt, video_packets
from tests.unit.test_pacer import paced_pair


def padded(data: bytes) -> bytes:
    """A capture packet grown to 1100 bytes (the capture's low layer has small ones)."""
    return data + bytes(max(0, 1100 - len(data)))


def switched_viewer() -> tuple[Conference, Client, Client, float, int]:
    """Chrome's three layers into a conference; the viewer asks for 180 px after 1 s and
    switches from layer h to layer l. Returns the conference, Chrome, the viewer, the time
    of the last packet and the first outgoing sequence number of layer l."""
    conference = Conference("c1", bridge_ssrc=1)
    chrome = Client("chrome", conference, 0.0, offer=CHROME_SIMULCAST)
    viewer = Client("viewer", conference, 0.0)
    records = [r for r in load(VIDEO) if RtpPacket.parse(r.data).payload_type == 96]
    asked = False
    now = 0.0
    for record in records:
        now = record.t_ms / 1000
        if not asked and now > 1.0:
            viewer.endpoint.constraints = parse_constraints(
                {"maxHeights": {"chrome": 180}}, viewer.endpoint.constraints)
            conference.refresh_layers(now)
            asked = True
        conference.on_rtp(chrome.endpoint, record.data, now)
    stream = viewer.endpoint.slots[0][1]
    assert stream.source == ("chrome", rid_ssrcs()["l"])
    return conference, chrome, viewer, now, stream.start_out_seq


def test_a_receivers_key_frame_request_names_the_layer_it_gets() -> None:
    conference, chrome, viewer, now, _start = switched_viewer()
    chrome.clear()
    slot = viewer.endpoint.slots[0][1]
    conference.on_rtcp(viewer.endpoint, [Pli(99, slot.ssrc)], now + 1.0)
    plis = [p.media_ssrc for p in chrome.received_rtcp() if isinstance(p, Pli)]
    assert plis == [rid_ssrcs()["l"]]


def test_nacks_for_the_layer_the_slot_left_are_not_answered() -> None:
    conference, _chrome, viewer, now, start = switched_viewer()
    slot = viewer.endpoint.slots[0][1]
    last = viewer.received_rtp()[-1].sequence_number  # still in the 1 s history
    viewer.clear()
    before, after = (start - 3) & 0xFFFF, last
    conference.on_rtcp(viewer.endpoint, [GenericNack(99, slot.ssrc, [before, after])], now)
    resent = viewer.received_rtp()
    assert [p.ssrc for p in resent] == [slot.rtx_ssrc]
    assert int.from_bytes(resent[0].payload[:2], "big") == after  # RFC 4588 §4: the OSN
    assert viewer.endpoint.stats.rtx_before_switch == 1
    assert viewer.endpoint.stats.retransmissions == 1


def test_retransmissions_stay_within_the_estimate() -> None:
    conference, timers, alice, bob = paced_pair()
    sendside = bob.endpoint.sendside
    assert sendside is not None
    pt = alice.endpoint.sending["video"].payload_type
    now = timers.now = 5.0
    bob.endpoint.pacer.set_estimate(50e6)  # pacing on, never holding anything back here
    for data in video_packets()[:200]:
        conference.on_rtp(alice.endpoint, padded(as_sender_pt(data, pt)), now)
        now += 0.002
    sent = [p.sequence_number for p in bob.received_rtp()
            if p.ssrc == bob.endpoint.slots[0][1].ssrc]
    assert len(sent) == 200
    slot = bob.endpoint.slots[0][1]
    # a NACK for all of them at once: only what fits RTX_WINDOW of the estimate goes
    conference.on_rtcp(bob.endpoint, [GenericNack(99, slot.ssrc, sent)], now)
    timers.run_until(now + 1.0)
    stats = bob.endpoint.stats
    allowed = sendside.value() / 8 * RTX_WINDOW
    assert stats.rtx_limited > 0 and stats.rtx_sent + stats.rtx_limited == 200
    assert stats.rtx_sent * 1100 <= allowed + 1200


def test_a_switch_drops_what_waits_of_the_old_layer() -> None:
    conference, timers, alice, bob = paced_pair()
    pt = alice.endpoint.sending["video"].payload_type
    packets = [padded(as_sender_pt(p, pt)) for p in video_packets()[:40]]
    now = timers.now = 5.0
    for data in packets[:5]:
        conference.on_rtp(alice.endpoint, data, now)
    bob.endpoint.pacer.set_estimate(100_000)  # 250 kbit/s: a burst waits
    for data in packets[5:30]:
        conference.on_rtp(alice.endpoint, data, now)
    waiting = len(bob.endpoint.pacer.queue)
    assert waiting > 10
    slot = bob.endpoint.slots[0][1]
    slot.switches += 1  # as when the slot moves to another layer at its key frame
    conference.on_rtp(alice.endpoint, packets[30], now)
    assert bob.endpoint.stats.paced_discarded == waiting
    assert len(bob.endpoint.pacer.queue) == 1
    timers.run_until(now + 1.0)
    seqs = [p.sequence_number for p in bob.received_rtp() if p.ssrc == slot.ssrc]
    assert len(seqs) == 31 - waiting
    assert (seqs[-1] - seqs[-2]) & 0xFFFF == waiting + 1  # the gap just before the new layer
