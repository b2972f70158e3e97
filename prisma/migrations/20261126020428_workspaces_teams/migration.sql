-- AlterTable
ALTER TABLE "audit_log" ADD COLUMN     "workspaceId" TEXT;

-- AlterTable
ALTER TABLE "invites" ADD COLUMN     "acceptedById" TEXT,
ADD COLUMN     "emailHint" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "invitedById" TEXT;

-- AlterTable
ALTER TABLE "llm_providers" ADD COLUMN     "workspaceId" TEXT,
ALTER COLUMN "userId" DROP NOT NULL;

-- AlterTable
ALTER TABLE "tenant_update_configs" ADD COLUMN     "modeOverride" TEXT;

-- AlterTable
ALTER TABLE "workspace_members" ADD COLUMN     "provisionedAt" TIMESTAMP(3),
ADD COLUMN     "provisionedRole" "WorkspaceRole";

-- CreateIndex
CREATE INDEX "audit_log_workspaceId_idx" ON "audit_log"("workspaceId");

-- CreateIndex
CREATE UNIQUE INDEX "llm_providers_workspaceId_name_key" ON "llm_providers"("workspaceId", "name");

-- AddForeignKey
ALTER TABLE "llm_providers" ADD CONSTRAINT "llm_providers_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "workspaces"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A provider belongs to exactly one owner: a user or a workspace (not in schema.prisma: Prisma has no CHECK).
ALTER TABLE "llm_providers" ADD CONSTRAINT "llm_providers_one_owner" CHECK (num_nonnulls("userId", "workspaceId") = 1);
