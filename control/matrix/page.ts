// The matrix run as an HTML page: one table, a row per test set and kernel,
// a column per Open MPI version, each cell coloured by its status and linked
// to its log. Self-contained (no scripts, no external assets); it reloads
// itself every few seconds while the run is not finished.
import type { CellView, Grid, Status } from './grid.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Background colours by status; the page test reads them back from the rendered table. */
export const statusColours: Record<Status, string> = {
  succeeded: '#b7e4b9',
  failed: '#f4b4b4',
  running: '#ffe08a',
  queued: '#e0e0e0',
};
const statusWord: Record<Status, string> = { succeeded: 'PASS', failed: 'FAIL', running: 'RUNNING', queued: 'QUEUED' };

function cellHtml(c: CellView, colspan: number): string {
  const counts = c.passed !== null || c.failed !== null ? ` ${c.passed ?? 0} ok, ${c.failed ?? 0} failed${c.skipped ? `, ${c.skipped} skipped` : ''}` : '';
  const secs = c.durationMs !== null ? ` · ${(c.durationMs / 1000).toFixed(1)} s` : '';
  const title = c.error ? ` title="${esc(c.error)}"` : '';
  return (
    `<td class="cell ${c.status}" data-status="${c.status}" data-cell="${c.id}"${colspan > 1 ? ` colspan="${colspan}"` : ''}${title}>` +
    `<a href="${esc(c.logUrl)}">${statusWord[c.status]}</a><span class="detail">${esc(counts + secs)}</span>` +
    (c.error ? `<div class="error">${esc(c.error.length > 160 ? c.error.slice(0, 157) + '...' : c.error)}</div>` : '') +
    `</td>`
  );
}

export function renderPage(g: Grid): string {
  const done = g.status === 'succeeded' || g.status === 'failed';
  const width = Math.max(g.columns.length, 1);
  const head = g.columns.length > 0 ? g.columns.map((c) => `<th scope="col" data-ompi="${esc(c.value)}">${esc(c.label)}</th>`).join('') : '<th scope="col">result</th>';
  const rows = g.rows
    .map((r) => {
      const cells =
        r.cells.length === 1 && r.cells[0]!.ompiVersion === '-'
          ? cellHtml(r.cells[0]!, width)
          : g.columns
              .map((col) => {
                const c = r.cells.find((x) => x.ompiVersion === col.value);
                return c ? cellHtml(c, 1) : '<td class="cell none">—</td>';
              })
              .join('');
      return `<tr data-set="${esc(r.testSet)}" data-kernel="${esc(r.kernelVersion)}"><th scope="row" title="${esc(r.title)}">${esc(r.testSet)}</th><th scope="row">${esc(r.kernelLabel)}</th>${cells}</tr>`;
    })
    .join('\n');
  const css = (Object.entries(statusColours) as [Status, string][]).map(([s, c]) => `td.${s}{background:${c}}`).join('');
  const c = g.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>matrix run ${g.id}: ${esc(g.status)}</title>
${done ? '' : '<meta http-equiv="refresh" content="5">'}
<style>
body{font:14px system-ui,sans-serif;margin:1.5em}
table{border-collapse:collapse}th,td{border:1px solid #999;padding:.4em .7em;text-align:left;vertical-align:top}
td.cell a{font-weight:bold;color:#000}span.detail{margin-left:.5em;color:#333}div.error{font-size:12px;color:#600;max-width:40em}
td.none{color:#888}${css}
</style></head>
<body>
<h1>Matrix run ${g.id}: <span id="run-status" class="${esc(g.status)}">${esc(g.status)}</span></h1>
<p>${esc(g.name)} · ${c.total} cells: ${c.succeeded} passed, ${c.failed} failed, ${c.running} running, ${c.queued} queued
${g.finishedAt ? ` · finished ${esc(g.finishedAt)}` : ''}</p>
<table id="grid">
<thead><tr><th scope="col">test set</th><th scope="col">kernel</th>${head}</tr></thead>
<tbody>
${rows}
</tbody></table>
<p>JSON: <a href="/matrix-runs/${g.id}">/matrix-runs/${g.id}</a></p>
</body></html>
`;
}
