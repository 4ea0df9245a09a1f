-- AlterTable
ALTER TABLE "MpiJob" ADD COLUMN     "mca" JSONB NOT NULL DEFAULT '{}';
