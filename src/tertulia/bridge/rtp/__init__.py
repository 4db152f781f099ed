"""Pure RTP/RTCP packet logic."""
