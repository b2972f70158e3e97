-- Row-level security for teams (see the row_level_security migration for the
-- model): workspaces, their members, invites, update configs and the audit
-- log, and workspace-owned rows of providers, agent configs and agents.
--
-- Membership is asked through two helpers. They are SECURITY DEFINER (they
-- run as the migration owner) so that a policy on workspace_members can ask
-- "is the caller a member of this workspace?" without recursing into that same
-- policy. For the same reason workspace_members is ENABLEd but not FORCEd: its
-- owner (the migration role, never the application's) must read it unfiltered
-- inside the helpers; the application role is bound as on every other table.

CREATE OR REPLACE FUNCTION is_workspace_member(ws text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT EXISTS (
    SELECT 1 FROM workspace_members m
    WHERE m."workspaceId" = ws AND m."userId" = current_setting('app.current_user_id', true))
$$;

CREATE OR REPLACE FUNCTION is_workspace_admin(ws text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT EXISTS (
    SELECT 1 FROM workspace_members m
    WHERE m."workspaceId" = ws AND m."userId" = current_setting('app.current_user_id', true)
      AND m.role IN ('owner', 'admin'))
$$;

CREATE OR REPLACE FUNCTION hangar_is_system() RETURNS boolean
  LANGUAGE sql STABLE AS $$ SELECT current_setting('app.system', true) = 'on' $$;

-- Workspaces: members read, owners and admins write (creation is declared system work: there is no member yet).
ALTER TABLE "workspaces" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "workspaces" FORCE ROW LEVEL SECURITY;
CREATE POLICY member_read ON "workspaces" FOR SELECT
  USING (hangar_is_system() OR is_workspace_member("id"));
CREATE POLICY admin_write ON "workspaces" FOR ALL
  USING (hangar_is_system() OR is_workspace_admin("id"))
  WITH CHECK (hangar_is_system() OR is_workspace_admin("id"));

-- Members: a member sees the workspace's member list (and everyone their own rows); owners and admins change it; anyone may leave.
ALTER TABLE "workspace_members" ENABLE ROW LEVEL SECURITY;
CREATE POLICY member_read ON "workspace_members" FOR SELECT
  USING (hangar_is_system() OR "userId" = current_setting('app.current_user_id', true) OR is_workspace_member("workspaceId"));
CREATE POLICY admin_write ON "workspace_members" FOR ALL
  USING (hangar_is_system() OR is_workspace_admin("workspaceId"))
  WITH CHECK (hangar_is_system() OR is_workspace_admin("workspaceId"));
CREATE POLICY self_leave ON "workspace_members" FOR DELETE
  USING ("userId" = current_setting('app.current_user_id', true));

-- Invites: the workspace's owners and admins; accepting one is system work (the invitee is no member yet).
ALTER TABLE "invites" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "invites" FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_all ON "invites" FOR ALL
  USING (hangar_is_system() OR is_workspace_admin("workspaceId"))
  WITH CHECK (hangar_is_system() OR is_workspace_admin("workspaceId"));

-- Update configs: members read, owners and admins write; an instance admin's override is system work.
ALTER TABLE "tenant_update_configs" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tenant_update_configs" FORCE ROW LEVEL SECURITY;
CREATE POLICY member_read ON "tenant_update_configs" FOR SELECT
  USING (hangar_is_system() OR is_workspace_member("workspaceId"));
CREATE POLICY admin_write ON "tenant_update_configs" FOR ALL
  USING (hangar_is_system() OR is_workspace_admin("workspaceId"))
  WITH CHECK (hangar_is_system() OR is_workspace_admin("workspaceId"));

-- Audit log: your own actions, and a workspace's owners and admins read that workspace's; rows are written as system work.
ALTER TABLE "audit_log" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "audit_log" FORCE ROW LEVEL SECURITY;
CREATE POLICY reader ON "audit_log" FOR SELECT
  USING (hangar_is_system() OR "actorId" = current_setting('app.current_user_id', true)
         OR ("workspaceId" IS NOT NULL AND is_workspace_admin("workspaceId")));
CREATE POLICY system_write ON "audit_log" FOR ALL
  USING (hangar_is_system()) WITH CHECK (hangar_is_system());

-- Providers: a workspace's are its owners' and admins' (their keys are never returned to anyone).
DROP POLICY tenant_isolation ON "llm_providers";
CREATE POLICY tenant_isolation ON "llm_providers"
  USING (hangar_is_system() OR "userId" = current_setting('app.current_user_id', true)
         OR ("workspaceId" IS NOT NULL AND is_workspace_admin("workspaceId")))
  WITH CHECK (hangar_is_system() OR "userId" = current_setting('app.current_user_id', true)
         OR ("workspaceId" IS NOT NULL AND is_workspace_admin("workspaceId")));

-- A workspace agent's config: members read it, owners and admins write it.
DROP POLICY tenant_isolation ON "agent_configs";
CREATE POLICY tenant_read ON "agent_configs" FOR SELECT
  USING (hangar_is_system() OR ("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true))
         OR ("ownerKind" = 'workspace' AND is_workspace_member("ownerId")));
CREATE POLICY tenant_write ON "agent_configs" FOR ALL
  USING (hangar_is_system() OR ("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true))
         OR ("ownerKind" = 'workspace' AND is_workspace_admin("ownerId")))
  WITH CHECK (hangar_is_system() OR ("ownerKind" = 'user' AND "ownerId" = current_setting('app.current_user_id', true))
         OR ("ownerKind" = 'workspace' AND is_workspace_admin("ownerId")));

-- A workspace agent's row: its members read it; only its lifecycle (system work) writes it.
CREATE POLICY workspace_read ON "agents" FOR SELECT
  USING ("ownerKind" = 'workspace' AND is_workspace_member("ownerId"));
