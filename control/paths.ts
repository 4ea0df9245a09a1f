// Every place the tooling reads or writes, derived once from the checkout.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Build output: never committed (see .gitignore). */
export const buildDir = path.join(root, 'build');
export const cBuildDir = path.join(buildDir, 'c');
/** Heavy downloads and state that outlive a checkout (trixie root, kernels, lab state). */
export const cacheDir = process.env.DICOM_CACHE ?? '/var/cache/dicom-ompi';
export const stateDir = process.env.DICOM_STATE ?? '/run/dicom-ompi';
export const dicomdBin = path.join(cBuildDir, 'dicomd');
export const libdicomSo = path.join(cBuildDir, 'libdicom.so');
/** the home stub that makes a rank migratable: `mpirun ... dicom-run ./app` */
export const dicomRunBin = path.join(cBuildDir, 'dicom-run');
/** parent of restored ranks, which reaps them (see btl-dicom/stub/adopt.c) */
export const dicomAdoptBin = path.join(cBuildDir, 'dicom-adopt');
export const templatesDir = path.join(root, 'mca-templates');
/** Where `dicomctl btl install` puts the component unless --system or --dest. */
export const defaultComponentDir = path.join(buildDir, 'components');
