"""HTTP routes of a bridge: health, stats, and the bridge channel."""

from __future__ import annotations

from aiohttp import web

from tertulia.bridge.bridge import Bridge
from tertulia.bridge.channel import BRIDGE_KEY, channel_handler
from tertulia.bridge.stats import endpoint_bandwidth


async def health(request: web.Request) -> web.Response:
    bridge: Bridge = request.app[BRIDGE_KEY]
    if bridge.bound:
        return web.json_response({"healthy": True})
    return web.json_response({"healthy": False, "reason": "media port not bound"}, status=503)


async def stats(request: web.Request) -> web.Response:
    bridge: Bridge = request.app[BRIDGE_KEY]
    return web.json_response(bridge.stats())


async def endpoints(request: web.Request) -> web.Response:
    """Per-endpoint bandwidth, without ids or rooms (anyone can read it)."""
    bridge: Bridge = request.app[BRIDGE_KEY]
    return web.json_response({"endpoints": endpoint_bandwidth(bridge, bridge.clock())})


def add_routes(app: web.Application, bridge: Bridge) -> None:
    app[BRIDGE_KEY] = bridge
    app.router.add_get("/bridge/ws/{conference}/{endpoint}", channel_handler)
    app.router.add_get("/about/bridge/stats", stats)
    app.router.add_get("/about/bridge/endpoints", endpoints)
    app.router.add_get("/about/bridge/health", health)
