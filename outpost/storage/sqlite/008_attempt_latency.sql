-- Attempt latency: milliseconds around the provider's publish call. Attempts recorded before
-- this, and those that never reached a provider, have none (NULL).
ALTER TABLE attempts ADD COLUMN latency_ms INTEGER;
