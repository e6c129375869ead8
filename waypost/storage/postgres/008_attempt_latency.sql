-- Attempt latency: milliseconds around the provider's publish call. Attempts recorded before
-- this, and those that never reached a provider, have none (NULL). Adding a nullable column
-- without a default rewrites nothing.
ALTER TABLE attempts ADD COLUMN latency_ms BIGINT;
