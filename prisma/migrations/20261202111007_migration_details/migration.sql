-- AlterTable
ALTER TABLE "Migration" ADD COLUMN     "downtimeMs" DOUBLE PRECISION,
ADD COLUMN     "failedAt" TEXT,
ADD COLUMN     "imageBytes" BIGINT,
ADD COLUMN     "jobLabel" TEXT,
ADD COLUMN     "rank" INTEGER;
