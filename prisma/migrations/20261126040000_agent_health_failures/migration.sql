-- Health beyond "running": fleet-reconcile counts each running agent's
-- consecutive failed health checks here and restarts it past a threshold.

-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "healthFailures" INTEGER NOT NULL DEFAULT 0;
