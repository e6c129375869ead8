"""Operator events and alerts (contract.md §7.4): what happened to deliveries, told to the operator.

- `core/operator_records.py` (below storage, which imports it): what the store keeps (outbox
  rows, per-destination health) and the judge seam the store calls inside the commit that
  records attempts.
- `envelope`: the JSON an operator receives, and the projections it carries.
- `alerts`: the judge: which events an attempt causes, and when a destination is disabled.
- `subscriptions`: `tenant.subscription.updated` after destination edits.
- `sinks`: where events go (signed HTTP, or any destination provider on a synthetic destination).
- `relay`: delivers the outbox through the sink, with retries, at least once.
- `setup`: Config → the pieces above (bootstrap's only entry point).
"""
