-- Metrics (§1.6.17) read a time range of events or attempts and group it by a few columns. The
-- time-leading indexes that list queries page through, (time, id) and (tenant_id, time, id), are
-- widened to carry every column a metrics query reads, so that an aggregate over a range is a
-- scan of one index and never a lookup of each row in the table (whose rows also hold the bodies).
-- List queries keep their keyset order: the leading columns are unchanged.

DROP INDEX attempts_by_time;
DROP INDEX attempts_by_tenant_time;
CREATE INDEX attempts_by_time ON attempts (
    time, id, tenant_id, destination_id, status, code, attempt_number, manual,
    destination_type, topic
);
CREATE INDEX attempts_by_tenant_time ON attempts (
    tenant_id, time, id, destination_id, status, code, attempt_number, manual,
    destination_type, topic
);

DROP INDEX events_by_time;
DROP INDEX events_by_tenant_time;
CREATE INDEX events_by_time ON events (time, id, tenant_id, topic, matched_destination_ids);
CREATE INDEX events_by_tenant_time ON events (tenant_id, time, id, topic, matched_destination_ids);
