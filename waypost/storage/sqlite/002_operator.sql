-- Operator events (contract §7.4). The outbox holds each event until its sink took it: written in
-- the commit that caused it (an attempt, an auto-disable, a destination edit), sent from here with
-- retries, deleted once sent. A claim moves visible_at to the end of a lease, as for tasks.
CREATE TABLE operator_events (
    seq         INTEGER PRIMARY KEY,       -- queueing order
    id          TEXT NOT NULL UNIQUE,
    topic       TEXT NOT NULL,
    body        BLOB NOT NULL,             -- the envelope, exactly as sent
    created_at  INTEGER NOT NULL,          -- epoch ms
    visible_at  INTEGER NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0 -- failed sends so far
);
CREATE INDEX operator_events_by_visibility ON operator_events (visible_at, seq);

-- Per destination: its run of consecutive failed attempts (reset by a success) and when it last
-- raised alert.attempt.exhausted_retries. Updated in the commit that records each attempt.
CREATE TABLE destination_health (
    tenant_id             TEXT NOT NULL,
    destination_id        TEXT NOT NULL,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    exhausted_alerted_at  INTEGER,
    PRIMARY KEY (tenant_id, destination_id)
);
