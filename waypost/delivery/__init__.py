"""Delivery: claim tasks, deliver each once, record the attempt, decide what follows."""
