-- Attempt latency: milliseconds around the provider's publish call. Attempts recorded before
-- this, and those that never reached a provider, have none (NULL).
ALTER TABLE attempts ADD COLUMN latency_ms INTEGER;

-- The metrics indexes of 003_metrics.sql carry every column an aggregate reads; latency too now,
-- so that latency measures stay index-only scans.
DROP INDEX attempts_by_time;
DROP INDEX attempts_by_tenant_time;
CREATE INDEX attempts_by_time ON attempts (
    time, id, tenant_id, destination_id, status, code, attempt_number, manual,
    destination_type, topic, latency_ms
);
CREATE INDEX attempts_by_tenant_time ON attempts (
    tenant_id, time, id, destination_id, status, code, attempt_number, manual,
    destination_type, topic, latency_ms
);
