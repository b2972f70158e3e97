-- Row-level security on the rest of the tenant tables (see the
-- row_level_security migration for the model): agents, sign-in sessions and
-- API tokens. Sessions and tokens are looked up by hash before anyone is
-- known, and agents are driven by id from the worker: those paths declare
-- themselves system work (app.system); everything a user does runs as them.

ALTER TABLE "agents" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "agents" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "agents"
  USING (("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true)) OR current_setting('app.system', true) = 'on')
  WITH CHECK (("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true)) OR current_setting('app.system', true) = 'on');

ALTER TABLE "sessions" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "sessions" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "sessions"
  USING ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on')
  WITH CHECK ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on');

ALTER TABLE "api_tokens" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "api_tokens" FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON "api_tokens"
  USING ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on')
  WITH CHECK ("userId" = current_setting('app.current_user_id', true) OR current_setting('app.system', true) = 'on');
