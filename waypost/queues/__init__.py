"""Our internal transports for delivery tasks (never called destinations)."""
