-- Embedded store: tenants, destinations, the event and attempt log, and the delivery queue,
-- in one SQLite database so that publishing an event and queueing its deliveries is one commit.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    metadata    TEXT,                      -- JSON object or NULL
    created_at  INTEGER NOT NULL,          -- epoch ms
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
CREATE INDEX tenants_by_created ON tenants (created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE destinations (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    type               TEXT NOT NULL,
    topics             TEXT NOT NULL,      -- JSON array
    filter             TEXT,               -- JSON object or NULL
    config             TEXT NOT NULL,
    credentials        TEXT NOT NULL,
    delivery_metadata  TEXT,
    metadata           TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    disabled_at        INTEGER,
    deleted_at         INTEGER,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE events (
    id                       TEXT PRIMARY KEY,  -- until 007, which keys events by (id, tenant_id)
    tenant_id                TEXT NOT NULL,
    topic                    TEXT NOT NULL,
    time                     INTEGER NOT NULL,
    eligible_for_retry       INTEGER NOT NULL,
    metadata                 TEXT NOT NULL,     -- JSON object
    data                     BLOB NOT NULL,     -- raw compact JSON as published
    matched_destination_ids  TEXT NOT NULL,     -- JSON array
    destination_id           TEXT NOT NULL,
    accepted_at              INTEGER NOT NULL   -- for the idempotency window
);
CREATE INDEX events_by_time ON events (time, id);
CREATE INDEX events_by_tenant_time ON events (tenant_id, time, id);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    destination_id    TEXT NOT NULL,
    destination_type  TEXT NOT NULL,
    topic             TEXT NOT NULL,
    status            TEXT NOT NULL,
    time              INTEGER NOT NULL,
    attempt_number    INTEGER NOT NULL,
    manual            INTEGER NOT NULL,
    code              TEXT NOT NULL,
    response_data     TEXT                -- JSON object or NULL
);
CREATE INDEX attempts_by_time ON attempts (time, id);
CREATE INDEX attempts_by_tenant_time ON attempts (tenant_id, time, id);
CREATE INDEX attempts_by_event ON attempts (event_id, destination_id, attempt_number);
CREATE INDEX attempts_by_destination ON attempts (tenant_id, destination_id, time, id);

-- The delivery queue. A row is visible to workers once visible_at has passed; claiming sets
-- visible_at to the lease's end. Automatic retries carry retry_key = '<event>:<destination>' so
-- that scheduling again for the same pair replaces the pending retry instead of adding one.
CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    destination_id  TEXT NOT NULL,
    attempt_number  INTEGER NOT NULL,
    manual          INTEGER NOT NULL,
    visible_at      INTEGER NOT NULL,
    leased          INTEGER NOT NULL DEFAULT 0,
    claims          INTEGER NOT NULL DEFAULT 0,
    generation      INTEGER NOT NULL DEFAULT 1,
    retry_key       TEXT UNIQUE
);
CREATE INDEX tasks_by_visibility ON tasks (visible_at);
