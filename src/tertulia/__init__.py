"""Tertulia: self-hosted video meetings with a selective forwarding bridge."""

__version__ = "0.1.0"
