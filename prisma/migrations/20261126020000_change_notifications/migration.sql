-- Change notifications for the API's caches (core/services/lookup-cache.service.ts).
-- The chat path keeps token → user, session → user and owner → agent in
-- memory; every write that could make such an entry wrong (a revoked token or
-- session, a deactivated or renamed user, an agent stopped, moved or given a
-- new gateway token) announces itself on channel `hangar_changes`, whoever
-- writes it: API, worker or CLI. NOTIFY is transactional, so it is sent when
-- the write commits and never for a write that rolled back.
--
-- The columns named as trigger arguments change often and matter to no cached
-- answer (activity stamps, advisory "last used", storage measurements, the
-- single-use bootstrap token): an update that changes nothing else is silent.
-- Inserts are silent too: the caches hold only rows that exist.

CREATE FUNCTION hangar_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_row jsonb := to_jsonb(OLD);
BEGIN
  IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - TG_ARGV) = (old_row - TG_ARGV) THEN
    RETURN NULL;
  END IF;
  -- The old row's keys: those are what a cache holds the row under; and a
  -- user's new status, so every API process can end a deactivated user's
  -- open chats and streams, not only the one that deactivated them.
  PERFORM pg_notify('hangar_changes', jsonb_strip_nulls(jsonb_build_object(
    't', TG_TABLE_NAME,
    'id', old_row->>'id',
    'userId', old_row->>'userId',
    'tokenHash', old_row->>'tokenHash',
    'ownerKind', old_row->>'ownerKind',
    'ownerId', old_row->>'ownerId',
    'name', old_row->>'name',
    'status', CASE WHEN TG_TABLE_NAME = 'users' AND TG_OP = 'UPDATE' THEN to_jsonb(NEW)->>'status' END
  ))::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change AFTER UPDATE OR DELETE ON "users"
  FOR EACH ROW EXECUTE FUNCTION hangar_notify_change('updatedAt');
CREATE TRIGGER sessions_notify_change AFTER UPDATE OR DELETE ON "sessions"
  FOR EACH ROW EXECUTE FUNCTION hangar_notify_change('updatedAt', 'lastSeenAt');
CREATE TRIGGER api_tokens_notify_change AFTER UPDATE OR DELETE ON "api_tokens"
  FOR EACH ROW EXECUTE FUNCTION hangar_notify_change('updatedAt', 'lastUsedAt');
CREATE TRIGGER agents_notify_change AFTER UPDATE OR DELETE ON "agents"
  FOR EACH ROW EXECUTE FUNCTION hangar_notify_change('updatedAt', 'lastActiveAt', 'storageBytes', 'storageMeasuredAt', 'bootstrapTokenHash', 'bootstrapExpiresAt');
