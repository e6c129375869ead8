"""An in-process, non-durable backend for tests and trying things out (see `backend`)."""

from outpost.storage.memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]
