"""In-process HTTP API tests: the ASGI app over a real SQLite backend, no delivery worker."""
