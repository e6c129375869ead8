-- A destination's run of consecutive failures ends when it is re-enabled or deleted: re-enabling
-- is the operator saying "try again", so the next failure must not disable it at once.
CREATE FUNCTION destination_health_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM destination_health WHERE tenant_id = NEW.tenant_id AND destination_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER destination_health_reset
AFTER UPDATE OF disabled_at, deleted_at ON destinations
FOR EACH ROW
WHEN ((OLD.disabled_at IS NOT NULL AND NEW.disabled_at IS NULL)
   OR (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL))
EXECUTE FUNCTION destination_health_reset();
