// Reads the TAP a cell prints (TAP 13/14: plan, ok / not ok, # SKIP and
// # TODO directives, Bail out!) into counts and a verdict. Only top-level
// test points count; indented lines are subtests or YAML diagnostics.
export interface TapSummary {
  planned: number | undefined;
  passed: number;
  failed: number;
  skipped: number;
  /** "not ok ... # TODO": expected failures, not counted as failed */
  todo: number;
  bailOut: string | undefined;
  /** names of the failing points, for the cell's error */
  failures: string[];
}

const POINT = /^(not )?ok\b\s*(\d+)?\s*(?:-\s*)?(.*)$/i;
const DIRECTIVE = /(?:^|\s)#\s*(SKIP|TODO)\b/i;

export class TapReader {
  private s: TapSummary = { planned: undefined, passed: 0, failed: 0, skipped: 0, todo: 0, bailOut: undefined, failures: [] };

  line(raw: string): void {
    const line = raw.replace(/\r$/, '');
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) {
      this.s.planned = Number(plan[1]);
      return;
    }
    const bail = /^Bail out!\s*(.*)$/.exec(line);
    if (bail) {
      this.s.bailOut = bail[1] || 'bailed out';
      return;
    }
    const m = POINT.exec(line);
    if (!m) return;
    const notOk = Boolean(m[1]);
    const rest = m[3] ?? '';
    const directive = DIRECTIVE.exec(rest)?.[1]?.toUpperCase();
    const name = rest.replace(/\s+#.*$/, '').trim();
    if (directive === 'SKIP') this.s.skipped++;
    else if (directive === 'TODO') this.s.todo++;
    else if (notOk) {
      this.s.failed++;
      this.s.failures.push(name || `#${m[2] ?? this.s.failed}`);
    } else this.s.passed++;
  }

  get summary(): TapSummary {
    return { ...this.s, failures: [...this.s.failures] };
  }
}

export function parseTap(text: string): TapSummary {
  const r = new TapReader();
  for (const l of text.split('\n')) r.line(l);
  return r.summary;
}

/** Why TAP says a run failed, or undefined when it passed. A run without any test point passed nothing. */
export function tapVerdict(s: TapSummary): string | undefined {
  if (s.bailOut) return `bailed out: ${s.bailOut}`;
  if (s.failed > 0) return `${s.failed} failed: ${s.failures.slice(0, 5).join(', ')}${s.failures.length > 5 ? ', ...' : ''}`;
  const ran = s.passed + s.failed + s.skipped + s.todo;
  if (s.planned !== undefined && ran !== s.planned) return `planned ${s.planned} tests but ${ran} ran`;
  if (s.passed === 0) return ran > 0 ? 'every test was skipped' : 'no TAP test point in the output';
  return undefined;
}
