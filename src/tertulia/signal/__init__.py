"""Signalling: WebSocket sessions, rooms, presence."""
