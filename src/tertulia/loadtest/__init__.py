"""`tertulia loadtest`: synthetic WebRTC participants against a deployment (see run.py)."""
