-- Fleet updates (issue 4): what a rollout reports after its workflow ends,
-- the update offered to a manual-mode agent, personal workspaces (whose update
-- config governs a user's agent) and the one-mail-per-user-per-rollout ledger.

-- AlterTable
ALTER TABLE "agents" ADD COLUMN "updateDigest" TEXT,
ADD COLUMN "updateRolloutId" TEXT;

-- AlterTable
ALTER TABLE "workspaces" ADD COLUMN "personalOwnerId" TEXT;

-- AlterTable: no rollout was ever written before this migration.
ALTER TABLE "rollouts" ADD COLUMN "changelog" TEXT,
ADD COLUMN "error" TEXT,
ADD COLUMN "progress" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN "trigger" TEXT NOT NULL DEFAULT 'admin',
ADD COLUMN "workflowId" TEXT NOT NULL;

-- CreateTable
CREATE TABLE "rollout_notifications" (
    "rolloutId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sentAt" TIMESTAMP(3),

    CONSTRAINT "rollout_notifications_pkey" PRIMARY KEY ("rolloutId","userId")
);

-- CreateIndex
CREATE UNIQUE INDEX "workspaces_personalOwnerId_key" ON "workspaces"("personalOwnerId");

-- CreateIndex
CREATE INDEX "rollouts_workflowId_idx" ON "rollouts"("workflowId");
