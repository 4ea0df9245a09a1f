-- CreateEnum
CREATE TYPE "TargetKind" AS ENUM ('ompi', 'kernel');

-- CreateEnum
CREATE TYPE "BuildStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed');

-- CreateEnum
CREATE TYPE "DeployStatus" AS ENUM ('pending', 'running', 'succeeded', 'failed', 'rolled_back');

-- CreateEnum
CREATE TYPE "JobStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed');

-- CreateTable
CREATE TABLE "Target" (
    "id" SERIAL NOT NULL,
    "kind" "TargetKind" NOT NULL,
    "version" TEXT NOT NULL,
    "btlApi" TEXT,
    "prefix" TEXT,
    "pkglibdir" TEXT,
    "incdirs" TEXT[],
    "libdirs" TEXT[],
    "bindir" TEXT NOT NULL DEFAULT '',
    "sysroot" TEXT NOT NULL DEFAULT '/',
    "runPrefix" TEXT[],
    "nodeId" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Target_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Build" (
    "id" SERIAL NOT NULL,
    "targetId" INTEGER NOT NULL,
    "status" "BuildStatus" NOT NULL DEFAULT 'queued',
    "log" TEXT NOT NULL DEFAULT '',
    "artifactPath" TEXT,
    "sha256" TEXT,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Build_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Deployment" (
    "id" SERIAL NOT NULL,
    "buildId" INTEGER NOT NULL,
    "targetId" INTEGER NOT NULL,
    "status" "DeployStatus" NOT NULL DEFAULT 'pending',
    "dest" TEXT NOT NULL,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Deployment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "DeploymentNode" (
    "id" SERIAL NOT NULL,
    "deploymentId" INTEGER NOT NULL,
    "nodeId" INTEGER,
    "nodeName" TEXT NOT NULL,
    "status" "DeployStatus" NOT NULL DEFAULT 'pending',
    "log" TEXT NOT NULL DEFAULT '',
    "error" TEXT,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "DeploymentNode_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Node" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "address" TEXT NOT NULL,
    "sshTarget" TEXT,
    "lastSeen" TIMESTAMP(3),
    "gossip" JSONB,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Node_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "MpiJob" (
    "id" SERIAL NOT NULL,
    "nodes" TEXT[],
    "np" INTEGER NOT NULL,
    "program" TEXT NOT NULL,
    "args" TEXT[],
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "exitCode" INTEGER,
    "stdout" TEXT NOT NULL DEFAULT '',
    "stderr" TEXT NOT NULL DEFAULT '',
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "MpiJob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "MigrationPolicy" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "params" JSONB NOT NULL DEFAULT '{}',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "MigrationPolicy_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Migration" (
    "id" SERIAL NOT NULL,
    "jobId" INTEGER,
    "policyId" INTEGER,
    "homeNode" TEXT NOT NULL,
    "homePid" INTEGER NOT NULL,
    "fromNode" TEXT NOT NULL,
    "toNode" TEXT NOT NULL,
    "phases" JSONB NOT NULL DEFAULT '{}',
    "outcome" TEXT,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Migration_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "MatrixRun" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "MatrixRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "MatrixCell" (
    "id" SERIAL NOT NULL,
    "runId" INTEGER NOT NULL,
    "kernelVersion" TEXT NOT NULL,
    "ompiVersion" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "log" TEXT NOT NULL DEFAULT '',
    "durationMs" INTEGER,

    CONSTRAINT "MatrixCell_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),

    CONSTRAINT "ApiToken_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Target_kind_version_sysroot_bindir_nodeId_key" ON "Target"("kind", "version", "sysroot", "bindir", "nodeId");

-- CreateIndex
CREATE INDEX "Build_status_idx" ON "Build"("status");

-- CreateIndex
CREATE INDEX "Build_targetId_status_idx" ON "Build"("targetId", "status");

-- CreateIndex
CREATE UNIQUE INDEX "DeploymentNode_deploymentId_nodeName_key" ON "DeploymentNode"("deploymentId", "nodeName");

-- CreateIndex
CREATE UNIQUE INDEX "Node_name_key" ON "Node"("name");

-- CreateIndex
CREATE UNIQUE INDEX "MigrationPolicy_name_key" ON "MigrationPolicy"("name");

-- CreateIndex
CREATE UNIQUE INDEX "MatrixCell_runId_kernelVersion_ompiVersion_key" ON "MatrixCell"("runId", "kernelVersion", "ompiVersion");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_name_key" ON "ApiToken"("name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_hash_key" ON "ApiToken"("hash");

-- AddForeignKey
ALTER TABLE "Target" ADD CONSTRAINT "Target_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Build" ADD CONSTRAINT "Build_targetId_fkey" FOREIGN KEY ("targetId") REFERENCES "Target"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_buildId_fkey" FOREIGN KEY ("buildId") REFERENCES "Build"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Deployment" ADD CONSTRAINT "Deployment_targetId_fkey" FOREIGN KEY ("targetId") REFERENCES "Target"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "DeploymentNode" ADD CONSTRAINT "DeploymentNode_deploymentId_fkey" FOREIGN KEY ("deploymentId") REFERENCES "Deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "DeploymentNode" ADD CONSTRAINT "DeploymentNode_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "Node"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Migration" ADD CONSTRAINT "Migration_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "MpiJob"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Migration" ADD CONSTRAINT "Migration_policyId_fkey" FOREIGN KEY ("policyId") REFERENCES "MigrationPolicy"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "MatrixCell" ADD CONSTRAINT "MatrixCell_runId_fkey" FOREIGN KEY ("runId") REFERENCES "MatrixRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;
