-- Usage and budgets: tokens through the chat proxy per user, agent, model and
-- UTC month, and admins' monthly token budgets per user or workspace. Rows are
-- written only by the API's usage flusher (declared system work, one upsert
-- per flush); a user reads their own usage; budgets are admin (system) only.

-- CreateTable
CREATE TABLE "usage_buckets" (
    "userId" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "model" TEXT NOT NULL,
    "period" TIMESTAMP(3) NOT NULL,
    "workspaceId" TEXT,
    "tokensIn" BIGINT NOT NULL DEFAULT 0,
    "tokensOut" BIGINT NOT NULL DEFAULT 0,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_buckets_pkey" PRIMARY KEY ("userId","agentId","model","period")
);

-- CreateTable
CREATE TABLE "usage_budgets" (
    "scope" TEXT NOT NULL,
    "targetId" TEXT NOT NULL,
    "monthlyTokens" BIGINT NOT NULL,
    "createdById" TEXT,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_budgets_pkey" PRIMARY KEY ("scope","targetId")
);

-- CreateIndex
CREATE INDEX "usage_buckets_period_workspaceId_idx" ON "usage_buckets"("period", "workspaceId");

-- Row-level security (see the row_level_security migration for the model).
ALTER TABLE "usage_buckets" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_buckets" FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_read ON "usage_buckets" FOR SELECT
  USING (hangar_is_system() OR "userId" = current_setting('app.current_user_id', true));
CREATE POLICY system_write ON "usage_buckets" FOR ALL
  USING (hangar_is_system()) WITH CHECK (hangar_is_system());

ALTER TABLE "usage_budgets" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_budgets" FORCE ROW LEVEL SECURITY;
CREATE POLICY system_all ON "usage_budgets" FOR ALL
  USING (hangar_is_system()) WITH CHECK (hangar_is_system());
