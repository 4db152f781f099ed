"""Pure message types and SDP handling."""
