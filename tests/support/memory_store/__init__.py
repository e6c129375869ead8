"""An in-process, non-durable backend for tests and trying things out (see `backend`)."""

from support.memory_store.backend import MemoryBackend

__all__ = ["MemoryBackend"]
