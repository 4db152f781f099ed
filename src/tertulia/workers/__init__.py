"""`tertulia serve --workers K`: K bridge worker processes behind one serve process.

serve runs web, signal and focus as a shard does, over an in-memory registry that its
supervisor (supervisor.py) fills with the workers' records; browsers reach a worker's bridge
channel through serve's own port (proxy.py). See docs/operations.md, "Bridge workers".
"""
