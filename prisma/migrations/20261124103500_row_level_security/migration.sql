-- Row-level security: the second wall behind per-query scoping. Tenant rows
-- are visible only when the transaction says whose they are
-- (app.current_user_id), or when it declares itself system work
-- (app.system = 'on', used by the worker and by lookups that precede knowing
-- the user). A query that forgets both sees nothing.
--
-- The application connects as a member of hangar_app: not a superuser, no
-- BYPASSRLS. FORCE makes the table owner obey the policies too.

-- Roles are cluster-wide: a second database on the same server finds it made.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hangar_app') THEN
    CREATE ROLE hangar_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO hangar_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hangar_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hangar_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hangar_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO hangar_app;

ALTER TABLE "llm_providers" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "llm_providers" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "llm_providers"
  USING ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on')
  WITH CHECK ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on');

ALTER TABLE "agent_configs" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "agent_configs" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "agent_configs"
  USING (("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true)) OR current_setting('app.system', true) = 'on')
  WITH CHECK (("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true)) OR current_setting('app.system', true) = 'on');
