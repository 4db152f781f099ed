"""Cluster registry."""
