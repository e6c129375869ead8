-- Recovery (bulk replay) jobs: what a job selects, how far its scan got, and its counts. The
-- cursor is the (time, id) of the last event scanned; it is written in the commit that queues
-- that batch's tasks, so a job resumed after a crash never queues an event twice.
CREATE TABLE recoveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    idempotency_key  TEXT,                  -- the client's key: one job per key and tenant
    destination_id   TEXT,                  -- NULL: every destination of the tenant
    topics           TEXT NOT NULL,         -- JSON array; empty: every topic
    time_gte         INTEGER,
    time_lt          INTEGER NOT NULL,      -- at the latest the job's creation: a job ends
    status           TEXT NOT NULL,         -- failed | never | all
    state            TEXT NOT NULL,         -- running | completed | cancelled
    cursor_time      INTEGER,
    cursor_id        TEXT,
    scan_done        INTEGER NOT NULL DEFAULT 0,
    matched          INTEGER,               -- NULL until the runner has counted
    enqueued         INTEGER NOT NULL DEFAULT 0,
    delivered        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX recoveries_by_key ON recoveries (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX recoveries_by_tenant ON recoveries (tenant_id, created_at, id);
CREATE INDEX recoveries_by_created ON recoveries (created_at, id);
CREATE INDEX recoveries_running ON recoveries (lease_until) WHERE state = 'running';

-- Which queued tasks a job made: counted as they finish, and its pending ones (joined with
-- tasks, so a task deleted without an attempt is not pending forever).
CREATE TABLE recovery_tasks (
    task_id      INTEGER PRIMARY KEY,
    recovery_id  TEXT NOT NULL
);
CREATE INDEX recovery_tasks_by_job ON recovery_tasks (recovery_id);

-- "Has this event been delivered to this destination?": the undelivered query asks it per event,
-- and this small index (successes only) answers it without reading attempt rows.
CREATE INDEX attempts_delivered ON attempts (tenant_id, event_id, destination_id)
    WHERE status = 'success';
