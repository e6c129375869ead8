"""The `kafka` destination type (§5.8): each event produced to a topic of the tenant's cluster."""
