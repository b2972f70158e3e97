-- AlterTable
ALTER TABLE "agents" ADD COLUMN     "bootstrapExpiresAt" TIMESTAMP(3),
ADD COLUMN     "bootstrapTokenHash" TEXT,
ADD COLUMN     "storageBytes" BIGINT,
ADD COLUMN     "storageMeasuredAt" TIMESTAMP(3);
