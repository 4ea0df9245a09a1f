-- DropIndex
DROP INDEX "MatrixCell_runId_kernelVersion_ompiVersion_key";

-- AlterTable
ALTER TABLE "MatrixCell" ADD COLUMN     "command" TEXT[],
ADD COLUMN     "error" TEXT,
ADD COLUMN     "exitCode" INTEGER,
ADD COLUMN     "failed" INTEGER,
ADD COLUMN     "finishedAt" TIMESTAMP(3),
ADD COLUMN     "passed" INTEGER,
ADD COLUMN     "skipped" INTEGER,
ADD COLUMN     "startedAt" TIMESTAMP(3),
ADD COLUMN     "testSet" TEXT NOT NULL;

-- AlterTable
ALTER TABLE "MatrixRun" ADD COLUMN     "selection" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "startedAt" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "MatrixCell_status_idx" ON "MatrixCell"("status");

-- CreateIndex
CREATE UNIQUE INDEX "MatrixCell_runId_testSet_kernelVersion_ompiVersion_key" ON "MatrixCell"("runId", "testSet", "kernelVersion", "ompiVersion");

