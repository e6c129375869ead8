-- An event belongs to its tenant: its identity is (tenant_id, id), so two tenants publishing the
-- same id keep two events, and idempotency applies within one tenant (see the SQLite migration).
-- The key leads with id so that a read naming no tenant (the admin's) still walks it. Processes
-- of an earlier version fail their publishes once this has run (their ON CONFLICT (id) names no
-- key any more): upgrade them together.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (id, tenant_id);

-- An event's attempts are found by (tenant, event): latest_attempt, and retention asking
-- whether an event still has one. Led by event_id, so a filter on event ids alone still uses it.
DROP INDEX attempts_by_event;
CREATE INDEX attempts_by_event ON attempts (event_id, tenant_id, destination_id, attempt_number);

-- Pending automatic retries were keyed '<event>:<destination>'; the key names the tenant now
-- (DeliveryTask.retry_key: tenant and event ids length-prefixed). Each row's key is made again
-- from its own columns, so every pending retry is still replaced or cancelled as before.
UPDATE tasks SET retry_key =
    length(tenant_id) || ':' || tenant_id || length(event_id) || ':' || event_id || destination_id
WHERE retry_key IS NOT NULL;
