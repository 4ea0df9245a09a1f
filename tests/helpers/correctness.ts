// The correctness set of the btl_dicom issue, shared by the one-node and the
// lab tests so both run exactly the same programs.
export interface CorrectnessCase {
  title: string;
  program: string;
  args: string[];
}

export const correctnessSet: CorrectnessCase[] = [
  { title: 'ping-pong 0 B..16 MiB, data verified', program: 'pingpong', args: ['--neighbors'] },
  { title: 'every MPI collective', program: 'collectives', args: [] },
  { title: 'MPI_ANY_SOURCE and MPI_ANY_TAG', program: 'anysource', args: [] },
  { title: '10,000 outstanding Isend/Irecv', program: 'outstanding', args: ['--requests', '10000'] },
  { title: 'non-contiguous derived datatypes', program: 'datatypes', args: [] },
  { title: 'checksummed stress', program: 'stress', args: [] },
];

/** rank 0's final line: "RESULT ok ..." */
export function resultLine(stdout: string): string | undefined {
  return stdout.split('\n').find((l) => l.startsWith('RESULT '));
}
