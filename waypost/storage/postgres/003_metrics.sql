-- Metrics (§1.6.17) read a time range of events or attempts and group it by a few columns. The
-- time-leading indexes that list queries page through, (time, id) and (tenant_id, time, id), carry
-- every other column a metrics query reads (INCLUDE), so that an aggregate over a range can be an
-- index-only scan instead of a visit to each row (whose pages also hold the bodies). Keys are
-- unchanged, so list queries keep their keyset order.

DROP INDEX attempts_by_time;
DROP INDEX attempts_by_tenant_time;
CREATE INDEX attempts_by_time ON attempts (time, id) INCLUDE (
    tenant_id, destination_id, status, code, attempt_number, manual, destination_type, topic
);
CREATE INDEX attempts_by_tenant_time ON attempts (tenant_id, time, id) INCLUDE (
    destination_id, status, code, attempt_number, manual, destination_type, topic
);

DROP INDEX events_by_time;
DROP INDEX events_by_tenant_time;
CREATE INDEX events_by_time ON events (time, id) INCLUDE (tenant_id, topic, matched_destination_ids);
CREATE INDEX events_by_tenant_time ON events (tenant_id, time, id) INCLUDE (
    topic, matched_destination_ids
);
