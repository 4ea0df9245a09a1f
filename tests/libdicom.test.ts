// libdicom's and dicomd's own C tests, built with AddressSanitizer and
// UBSan, one ava test per C program so each failure is named; then the
// libFuzzer targets for a bounded time.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { cBuildDir, root } from '../control/paths.js';

const asanDir = path.join(cBuildDir, 'asan');
const programs = readdirSync(path.join(root, 'btl-dicom/tests'))
  .filter((f) => /^test_\w+\.c$/.test(f))
  .map((f) => f.replace(/\.c$/, ''))
  .sort();

test.before(async () => {
  await execa('make', ['-C', path.join(root, 'btl-dicom'), '-j2', `BUILD=${asanDir}`, 'SAN=1', 'tests'], { timeout: 10 * 60_000 });
});

for (const name of programs) {
  test.serial(`libdicom C test under ASan+UBSan: ${name}`, async (t) => {
    const r = await execa(path.join(asanDir, 'tests', name), [], {
      reject: false,
      all: true,
      timeout: 5 * 60_000,
      env: { ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
    });
    const out = String(r.all);
    t.is(r.exitCode, 0, out.slice(-4000));
    t.notRegex(out, /^not ok/m, out.slice(-4000));
    t.notRegex(out, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
    t.regex(out, /^ok /m, 'the program ran at least one check');
  });
}

test.serial('libFuzzer: frame decoder and dicomd input parser, 60 s each, no crash', async (t) => {
  const seconds = process.env.DICOM_FUZZ_SECONDS ?? '60';
  const r = await execa('make', ['-C', path.join(root, 'btl-dicom'), 'fuzz', `FUZZ_SECONDS=${seconds}`], { reject: false, all: true, timeout: 10 * 60_000 });
  const out = String(r.all);
  t.is(r.exitCode, 0, out.slice(-4000));
  t.regex(out, /fuzz_decode exit 0, fuzz_dicomd_input exit 0/);
  const runs = [...out.matchAll(/stat::number_of_executed_units:\s+(\d+)/g)].map((m) => Number(m[1]));
  t.is(runs.length, 2, 'both fuzzers report their stats');
  t.true(runs.every((n) => n > 10_000), `each fuzzer executed many inputs: ${runs.join(', ')}`);
  t.log(`executed units: ${runs.join(', ')}`);
});
