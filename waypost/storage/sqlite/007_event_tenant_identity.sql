-- An event belongs to its tenant: its identity is (tenant_id, id), so two tenants publishing the
-- same id keep two events, and idempotency applies within one tenant. SQLite cannot change a
-- primary key in place: the table is rebuilt with every row, and its indexes made again.
-- The key leads with id so that a read naming no tenant (the admin's) still walks it.

CREATE TABLE events_by_tenant (
    id                       TEXT NOT NULL,
    tenant_id                TEXT NOT NULL,
    topic                    TEXT NOT NULL,
    time                     INTEGER NOT NULL,
    eligible_for_retry       INTEGER NOT NULL,
    metadata                 TEXT NOT NULL,     -- JSON object
    data                     BLOB NOT NULL,     -- raw compact JSON as published
    matched_destination_ids  TEXT NOT NULL,     -- JSON array
    destination_id           TEXT NOT NULL,
    accepted_at              INTEGER NOT NULL,  -- for the idempotency window
    PRIMARY KEY (id, tenant_id)
);
INSERT INTO events_by_tenant SELECT
    id, tenant_id, topic, time, eligible_for_retry, metadata, data, matched_destination_ids,
    destination_id, accepted_at
FROM events;
DROP TABLE events;
ALTER TABLE events_by_tenant RENAME TO events;
CREATE INDEX events_by_time ON events (time, id, tenant_id, topic, matched_destination_ids);
CREATE INDEX events_by_tenant_time ON events (tenant_id, time, id, topic, matched_destination_ids);

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
