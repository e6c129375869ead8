-- Production store: the same tables as the embedded one, shared by any number of API and
-- delivery processes. Times are epoch milliseconds; JSON maps are stored as text so that both
-- backends read them with the same code.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    metadata    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX tenants_by_created ON tenants (created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE destinations (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    type               TEXT NOT NULL,
    topics             TEXT NOT NULL,
    filter             TEXT,
    config             TEXT NOT NULL,
    credentials        TEXT NOT NULL,
    delivery_metadata  TEXT,
    metadata           TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    disabled_at        BIGINT,
    deleted_at         BIGINT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE events (
    id                       TEXT PRIMARY KEY,
    tenant_id                TEXT NOT NULL,
    topic                    TEXT NOT NULL,
    time                     BIGINT NOT NULL,
    eligible_for_retry       BOOLEAN NOT NULL,
    metadata                 TEXT NOT NULL,
    data                     BYTEA NOT NULL,
    matched_destination_ids  TEXT NOT NULL,
    destination_id           TEXT NOT NULL,
    accepted_at              BIGINT NOT NULL
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
    time              BIGINT NOT NULL,
    attempt_number    INTEGER NOT NULL,
    manual            BOOLEAN NOT NULL,
    code              TEXT NOT NULL,
    response_data     TEXT
);
CREATE INDEX attempts_by_time ON attempts (time, id);
CREATE INDEX attempts_by_tenant_time ON attempts (tenant_id, time, id);
CREATE INDEX attempts_by_event ON attempts (event_id, destination_id, attempt_number);
CREATE INDEX attempts_by_destination ON attempts (tenant_id, destination_id, time, id);

-- The delivery queue; see the SQLite schema for the meaning of each column. Claims take rows with
-- FOR UPDATE SKIP LOCKED through tasks_by_visibility, so a large backlog stays cheap to claim from.
CREATE TABLE tasks (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    destination_id  TEXT NOT NULL,
    attempt_number  INTEGER NOT NULL,
    manual          BOOLEAN NOT NULL,
    visible_at      BIGINT NOT NULL,
    leased          BOOLEAN NOT NULL DEFAULT FALSE,
    claims          INTEGER NOT NULL DEFAULT 0,
    generation      INTEGER NOT NULL DEFAULT 1,
    retry_key       TEXT UNIQUE
);
CREATE INDEX tasks_by_visibility ON tasks (visible_at);
