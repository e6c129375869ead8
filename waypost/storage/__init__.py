"""Durable state: tenants and destinations, the event/attempt log, and (embedded) the queue."""
