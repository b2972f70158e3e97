-- First boot (security review): a password hash parked for a workflow to use by
-- reference, and at most one breakglass admin however many requests race.
-- An instance that already has two breakglass users (possible through the old
-- CLI) must demote one to a local admin before this migration applies.

-- CreateTable
CREATE TABLE "pending_credentials" (
    "id" TEXT NOT NULL,
    "passwordHash" TEXT NOT NULL,
    "userId" TEXT,
    "usedAt" TIMESTAMP(3),
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pending_credentials_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "pending_credentials_expiresAt_idx" ON "pending_credentials"("expiresAt");

-- CreateIndex
CREATE UNIQUE INDEX "users_one_breakglass" ON "users"("authSource") WHERE ("authSource" = 'breakglass'::"AuthSource");
