"""Structured logs: what is being handled (request id, event, destination, attempt) travels with
every log line emitted while handling it, in text or JSON lines."""
