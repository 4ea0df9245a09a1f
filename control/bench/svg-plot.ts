// A small dependency-free SVG line chart: log2 x axis (message size), linear
// or log10 y axis, one polyline per series. Enough for benchmark reports.
export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
}

export interface Panel {
  title: string;
  yLabel: string;
  yLog?: boolean;
  series: Series[];
  /** Horizontal reference line, e.g. a ratio target of 1.0. */
  refY?: number;
}

const W = 560;
const H = 320;
const M = { l: 70, r: 20, t: 34, b: 46 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function sizeLabel(x: number): string {
  if (x >= 1 << 20) return `${x / (1 << 20)}M`;
  if (x >= 1024) return `${x / 1024}K`;
  return String(x);
}

function panel(p: Panel, ox: number): string {
  const pts = p.series.flatMap((s) => s.points).filter((q) => Number.isFinite(q.y) && (!p.yLog || q.y > 0));
  if (pts.length === 0) return '';
  const fx = (x: number) => Math.log2(Math.max(x, 1) + 1);
  const fy = (y: number) => (p.yLog ? Math.log10(y) : y);
  const xs = pts.map((q) => fx(q.x));
  const ys = pts.map((q) => fy(q.y)).concat(p.refY !== undefined ? [fy(p.refY)] : []);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!p.yLog) y0 = Math.min(0, y0);
  if (y1 === y0) y1 = y0 + 1;
  const sx = (x: number) => ox + M.l + ((fx(x) - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
  const sy = (y: number) => H - M.b - ((fy(y) - y0) / (y1 - y0)) * (H - M.t - M.b);
  const out: string[] = [];
  out.push(`<text x="${ox + W / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<rect x="${ox + M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>`);
  for (let e = 0; e <= 24; e += 4) {
    const x = e === 0 ? 0 : 2 ** e;
    if (fx(x) < x0 || fx(x) > x1) continue;
    out.push(`<text x="${sx(x)}" y="${H - M.b + 16}" text-anchor="middle" font-size="11">${sizeLabel(x)}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const label = p.yLog ? (10 ** v).toPrecision(2) : v.toPrecision(3);
    const y = H - M.b - (i / 4) * (H - M.t - M.b);
    out.push(`<text x="${ox + M.l - 6}" y="${y + 4}" text-anchor="end" font-size="11">${label}</text>`);
  }
  out.push(`<text x="${ox + W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">message size (bytes)</text>`);
  out.push(`<text x="${ox + 16}" y="${H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${ox + 16} ${H / 2})">${esc(p.yLabel)}</text>`);
  if (p.refY !== undefined) {
    out.push(`<line x1="${ox + M.l}" x2="${ox + W - M.r}" y1="${sy(p.refY)}" y2="${sy(p.refY)}" stroke="#c00" stroke-dasharray="4 3"/>`);
  }
  p.series.forEach((s, i) => {
    const good = s.points.filter((q) => Number.isFinite(q.y) && (!p.yLog || q.y > 0));
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${good.map((q) => `${sx(q.x).toFixed(1)},${sy(q.y).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<text x="${ox + M.l + 8}" y="${M.t + 16 + i * 15}" font-size="12" fill="${s.color}">${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

export function renderSvg(panels: Panel[]): string {
  const body = panels.map((p, i) => panel(p, i * W)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * panels.length}" height="${H}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}
