"""The scaled-out shape: bridge and shard processes and the control API between them."""
