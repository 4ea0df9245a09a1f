// Emits the `git format-patch` series for one kernel version. A scratch git
// repository holds that version's pristine copies of the files the series
// edits; each patch of kernel-patches/series.json adds its rendered files,
// makes its edits (anchored on the file's own content, so the context of
// every hunk is the real one of that version) and is committed; then
// format-patch writes the series.
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { patchesDir } from './render.js';
import { KernelError } from './versions.js';

type Edit =
  | { file: string; kind: 'append'; line: string }
  | { file: string; kind: 'before'; at: string; line: string }
  | { file: string; kind: 'sorted'; among: string; key: string; line: string };

interface PatchSpec {
  subject: string;
  body: string[];
  files: string[];
  maintainersFiles: string[];
  edits: Edit[];
}

interface SeriesSpec {
  author: string;
  date: string;
  maintainers: { title: string; entries: string[] };
  patches: PatchSpec[];
}

export async function loadSeriesSpec(): Promise<SeriesSpec> {
  return JSON.parse(await readFile(path.join(patchesDir, 'series.json'), 'utf8')) as SeriesSpec;
}

function applyEdit(text: string, e: Edit): string {
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  if (e.kind === 'append') {
    lines.push(e.line);
  } else if (e.kind === 'before') {
    const re = new RegExp(e.at);
    const i = lines.findIndex((l) => re.test(l));
    if (i < 0) throw new KernelError(`${e.file}: no line matches ${e.at}`);
    lines.splice(i, 0, e.line);
  } else {
    const re = new RegExp(e.among);
    const key = e.key.toLowerCase();
    let last = -1;
    let at = -1;
    for (let i = 0; i < lines.length; i++) {
      const m = re.exec(lines[i]!);
      if (!m) continue;
      last = i;
      if ((m[1] ?? m[0]).toLowerCase() > key) {
        at = i;
        break;
      }
    }
    if (last < 0) throw new KernelError(`${e.file}: no line matches ${e.among}`);
    lines.splice(at >= 0 ? at : last + 1, 0, e.line);
  }
  if (trailing !== undefined) lines.push(trailing);
  return lines.join('\n');
}

/**
 * Adds `F:` patterns to our MAINTAINERS section, creating the section in
 * alphabetical order first; patterns stay sorted, as checkpatch wants.
 */
export function addMaintainers(text: string, spec: SeriesSpec['maintainers'], files: string[]): string {
  const lines = text.split('\n');
  const listStart = lines.findIndex((l) => /^Maintainers List/.test(l));
  if (listStart < 0) throw new KernelError('MAINTAINERS: no "Maintainers List" heading');
  const isTitle = (i: number) => lines[i] !== '' && lines[i - 1] === '' && /^[A-Z]:\t/.test(lines[i + 1] ?? '');
  let title = lines.indexOf(spec.title, listStart);
  if (title < 0) {
    // The list is only nearly sorted: take the boundary with the most titles
    // sorting before ours above it and after ours below it.
    const titles: number[] = [];
    for (let i = listStart + 1; i < lines.length; i++) if (isTitle(i)) titles.push(i);
    if (titles.length === 0) throw new KernelError('MAINTAINERS: no sections');
    const ours = spec.title.toUpperCase();
    const after = titles.map((i) => (lines[i]!.toUpperCase() > ours ? 1 : 0));
    let score = after.reduce((a: number, b) => a + b, 0);
    let best = { score, at: 0 };
    for (let k = 0; k < titles.length; k++) {
      score += after[k] ? -1 : 1;
      if (score >= best.score) best = { score, at: k + 1 };
    }
    const at = best.at < titles.length ? titles[best.at]! : lines.length;
    lines.splice(at, 0, spec.title, ...spec.entries, '');
    title = at;
  }
  let end = title + 1;
  while (end < lines.length && /^[A-Z]:\t/.test(lines[end]!)) end++;
  const entries = lines.slice(title + 1, end);
  const others = entries.filter((l) => !l.startsWith('F:\t'));
  const patterns = [...entries.filter((l) => l.startsWith('F:\t')), ...files.map((f) => `F:\t${f}`)].sort();
  lines.splice(title + 1, entries.length, ...others, ...patterns);
  return lines.join('\n');
}

export interface Series {
  dir: string;
  patches: string[];
}

/** Writes build/kernel/<series>/series/NNNN-*.patch from the rendered tree and the pristine source. */
export async function makeSeries(renderedTree: string, sourceTree: string, outDir: string): Promise<Series> {
  const spec = await loadSeriesSpec();
  const repo = path.join(outDir, 'git');
  const dir = path.join(outDir, 'series');
  await rm(repo, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  await mkdir(repo, { recursive: true });
  const [, name, email] = /^(.*) <(.*)>$/.exec(spec.author) ?? [];
  const env = {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: name!,
    GIT_AUTHOR_EMAIL: email!,
    GIT_COMMITTER_NAME: name!,
    GIT_COMMITTER_EMAIL: email!,
    GIT_AUTHOR_DATE: spec.date,
    GIT_COMMITTER_DATE: spec.date,
  };
  const gitIn = async (input: string, ...args: string[]) => {
    const r = await execa('git', args, { cwd: repo, env, reject: false, input });
    if (r.exitCode !== 0) throw new KernelError(`git ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const git = (...args: string[]) => gitIn('', ...args);
  await git('init', '-q', '-b', 'base');
  const edited = [...new Set([...spec.patches.flatMap((p) => p.edits.map((e) => e.file)), 'MAINTAINERS'])];
  for (const f of edited) {
    await mkdir(path.dirname(path.join(repo, f)), { recursive: true });
    await copyFile(path.join(sourceTree, f), path.join(repo, f)).catch(() => {
      throw new KernelError(`${f} is missing from ${sourceTree}`);
    });
  }
  await git('add', '-A');
  await git('commit', '-q', '-m', 'pristine files the series edits');
  const base = (await git('rev-parse', 'HEAD')).trim();
  for (const p of spec.patches) {
    for (const f of p.files) {
      await mkdir(path.dirname(path.join(repo, f)), { recursive: true });
      await copyFile(path.join(renderedTree, f), path.join(repo, f));
    }
    for (const e of p.edits) {
      const file = path.join(repo, e.file);
      await writeFile(file, applyEdit(await readFile(file, 'utf8'), e));
    }
    const mnt = path.join(repo, 'MAINTAINERS');
    await writeFile(mnt, addMaintainers(await readFile(mnt, 'utf8'), spec.maintainers, p.maintainersFiles));
    await git('add', '-A');
    const message = [p.subject, '', ...p.body, '', `Signed-off-by: ${spec.author}`].join('\n');
    await gitIn(message + '\n', 'commit', '-q', '-F', '-', '--cleanup=verbatim');
  }
  // Fixed identity and dates, no commit ids: the same templates give the same series.
  const out = await git('format-patch', '--zero-commit', '--no-signature', '-o', dir, `${base}..HEAD`);
  return { dir, patches: out.split('\n').filter(Boolean) };
}
