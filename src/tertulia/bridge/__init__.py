"""Selective forwarding bridge."""
