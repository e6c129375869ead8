-- Only retries have a retry_key; first attempts and manual ones leave it NULL. The unique index
-- held an entry for every task all the same, and a new one each time a claim moved a task (the
-- lease changes visible_at, so the row is not updated in place): work on every publish and every
-- claim for rows no conflict can involve. A partial index keeps only the retries; the upserts
-- name its predicate so that PostgreSQL picks it as their arbiter.
CREATE UNIQUE INDEX tasks_by_retry_key ON tasks (retry_key) WHERE retry_key IS NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_retry_key_key;
