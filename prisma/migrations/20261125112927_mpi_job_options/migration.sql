-- AlterTable
ALTER TABLE "MpiJob" ADD COLUMN     "componentDir" TEXT,
ADD COLUMN     "daemon" TEXT NOT NULL DEFAULT 'dicomd',
ADD COLUMN     "timeoutSeconds" INTEGER NOT NULL DEFAULT 300;
