"""Single-port media transport: demux, ICE-lite, DTLS, SRTP."""
