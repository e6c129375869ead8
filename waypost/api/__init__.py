"""Outpost's HTTP API under /api/v1, wire-compatible with the official SDKs."""
