-- AlterEnum
ALTER TYPE "AgentOwnerKind" ADD VALUE 'federated';

-- DropIndex
DROP INDEX "federation_peers_name_key";

-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "displayName" TEXT;

-- AlterTable
ALTER TABLE "federated_agents" DROP COLUMN "direction",
ADD COLUMN     "createdById" TEXT,
ADD COLUMN     "lastSeenAt" TIMESTAMP(3),
ADD COLUMN     "name" TEXT NOT NULL,
ADD COLUMN     "primaryModel" TEXT,
ADD COLUMN     "statusReason" TEXT,
ADD COLUMN     "workflowId" TEXT NOT NULL,
ALTER COLUMN "status" SET DEFAULT 'pending';

-- AlterTable
ALTER TABLE "federation_peers" DROP COLUMN "ourKeyId",
DROP COLUMN "status",
ADD COLUMN     "agentLimit" INTEGER NOT NULL DEFAULT 5,
ADD COLUMN     "direction" TEXT NOT NULL DEFAULT 'both',
ADD COLUMN     "fingerprint" TEXT NOT NULL,
ADD COLUMN     "instanceId" TEXT NOT NULL,
ADD COLUMN     "instanceUrl" TEXT NOT NULL,
ADD COLUMN     "lastSeenAt" TIMESTAMP(3),
ADD COLUMN     "previousKeyUntil" TIMESTAMP(3),
ADD COLUMN     "previousPublicKey" TEXT,
ADD COLUMN     "providerId" TEXT,
ADD COLUMN     "removedAt" TIMESTAMP(3);

-- CreateTable
CREATE TABLE "federation_nonces" (
    "peerId" TEXT NOT NULL,
    "nonce" TEXT NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "federation_nonces_pkey" PRIMARY KEY ("peerId","nonce")
);

-- CreateIndex
CREATE INDEX "federation_nonces_expiresAt_idx" ON "federation_nonces"("expiresAt");

-- CreateIndex
CREATE UNIQUE INDEX "federation_peers_live_name" ON "federation_peers"("name") WHERE ("removedAt" IS NULL);

-- CreateIndex
CREATE UNIQUE INDEX "federation_peers_live_instance" ON "federation_peers"("instanceId") WHERE ("removedAt" IS NULL);
