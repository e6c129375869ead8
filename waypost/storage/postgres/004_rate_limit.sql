-- The API rate limit (API_RATE_LIMIT) shared by every API process: one row per caller and fixed
-- window, incremented by an upsert. UNLOGGED: counts are worth nothing after a crash, and without
-- WAL an increment does not wait for a flush to disk (it would otherwise cost an fsync per request).
CREATE UNLOGGED TABLE rate_limit_windows (
    key TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
