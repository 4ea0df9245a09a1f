-- AlterTable
ALTER TABLE "MigrationPolicy" ADD COLUMN     "description" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "state" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- CreateTable
CREATE TABLE "NodePool" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "nodes" TEXT[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "NodePool_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PolicyDecision" (
    "id" SERIAL NOT NULL,
    "policyId" INTEGER NOT NULL,
    "evaluation" TEXT NOT NULL,
    "dryRun" BOOLEAN NOT NULL,
    "action" TEXT NOT NULL,
    "jobLabel" TEXT,
    "rank" INTEGER,
    "addr" TEXT NOT NULL,
    "fromNode" TEXT NOT NULL,
    "toNode" TEXT,
    "reason" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PolicyDecision_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "NodePool_name_key" ON "NodePool"("name");

-- CreateIndex
CREATE INDEX "PolicyDecision_policyId_createdAt_idx" ON "PolicyDecision"("policyId", "createdAt");

-- AddForeignKey
ALTER TABLE "PolicyDecision" ADD CONSTRAINT "PolicyDecision_policyId_fkey" FOREIGN KEY ("policyId") REFERENCES "MigrationPolicy"("id") ON DELETE CASCADE ON UPDATE CASCADE;
