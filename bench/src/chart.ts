/**
 * A dependency-free SVG chart of the scenarios: median throughput, median p99 and the max/min
 * share of calls per backend, as horizontal bars.
 */

export interface ChartRow {
  name: string;
  rps: number;
  p99Ms: number;
  /** null: infinite (some backend got nothing); undefined: not an evenness case (not drawn). */
  maxMinShare?: number | null;
  idleBackends?: number;
}

export interface ChartInput {
  title: string;
  subtitle: string;
  rows: readonly ChartRow[];
}

const WIDTH = 960;
const LABEL_WIDTH = 230;
const VALUE_WIDTH = 150;
const BAR_HEIGHT = 18;
const ROW_GAP = 6;
const PANEL_GAP = 34;
const TOP = 80;
/** The evenness panel is log-scaled up to this max/min (1.0 draws nothing, ∞ full width). */
const SHARE_CAP = 10;

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function colorOf(name: string): string {
  if (name.startsWith('grpc-lb') || name === 'evenness') return '#2b6cb0';
  if (name.startsWith('grpc-js')) return '#718096';
  if (name === 'direct') return '#38a169';
  return '#dd6b20';
}

interface PanelRow {
  name: string;
  value: number;
  label: string;
  infinite: boolean;
}

/** Bar length as a fraction of the space: linear to the largest value, or a fixed log scale. */
type Scale = (value: number, max: number) => number;
const linear: Scale = (value, max) => (max > 0 ? value / max : 0);
const logShare: Scale = (value) =>
  Math.min(1, Math.max(0, Math.log10(value) / Math.log10(SHARE_CAP)));

function panel(
  title: string,
  rows: readonly PanelRow[],
  top: number,
  scale: Scale,
): { svg: string; height: number } {
  const barSpace = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  const finite = rows.filter((r) => !r.infinite && Number.isFinite(r.value)).map((r) => r.value);
  const max = Math.max(0, ...finite);
  const parts: string[] = [`<text x="10" y="${top}" class="panel">${escapeXml(title)}</text>`];
  rows.forEach((row, i) => {
    const y = top + 10 + i * (BAR_HEIGHT + ROW_GAP);
    const length = row.infinite
      ? barSpace
      : Number.isFinite(row.value)
        ? Math.max(1, scale(row.value, max) * barSpace)
        : 0;
    const fill = row.infinite ? 'url(#hatch)' : colorOf(row.name);
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + 13}" class="label">${escapeXml(row.name)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y}" width="${length.toFixed(1)}" height="${BAR_HEIGHT}" fill="${fill}"/>`,
      `<text x="${(LABEL_WIDTH + length + 6).toFixed(1)}" y="${y + 13}" class="value">${escapeXml(row.label)}</text>`,
    );
  });
  return { svg: parts.join('\n'), height: 10 + rows.length * (BAR_HEIGHT + ROW_GAP) };
}

export function renderChart(input: ChartInput): string {
  const panels: string[] = [];
  let top = TOP;
  const add = (title: string, rows: PanelRow[], scale: Scale = linear): void => {
    if (rows.length === 0) return;
    const drawn = panel(title, rows, top, scale);
    panels.push(drawn.svg);
    top += drawn.height + PANEL_GAP;
  };
  add(
    'Throughput, median requests/s (higher is better)',
    input.rows.map((r) => ({
      name: r.name,
      value: r.rps,
      label: Number.isFinite(r.rps) ? `${Math.round(r.rps)} rps` : 'n/a',
      infinite: false,
    })),
  );
  add(
    'p99 latency, median ms (lower is better)',
    input.rows.map((r) => ({
      name: r.name,
      value: r.p99Ms,
      label: Number.isFinite(r.p99Ms) ? `${r.p99Ms.toFixed(2)} ms` : 'n/a',
      infinite: false,
    })),
  );
  add(
    'Evenness per client, max/min calls per backend (log scale, target ≤ 1.02; hatched: one got none)',
    input.rows
      .filter((r) => r.maxMinShare !== undefined)
      .map((r) => ({
        name: r.name,
        value: r.maxMinShare ?? Infinity,
        label:
          r.maxMinShare === null || r.maxMinShare === undefined
            ? `∞ (${r.idleBackends ?? '?'} idle)`
            : r.maxMinShare.toFixed(3),
        infinite: r.maxMinShare === null,
      })),
    logShare,
  );
  const height = top;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">
<defs>
<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="8" height="8" fill="#fbd38d"/><line x1="0" y1="0" x2="0" y2="8" stroke="#dd6b20" stroke-width="4"/>
</pattern>
<style>
.title { font-size: 18px; font-weight: bold; }
.subtitle { font-size: 12px; fill: #4a5568; }
.panel { font-size: 14px; font-weight: bold; }
.label { font-size: 12px; text-anchor: end; }
.value { font-size: 12px; fill: #1a202c; }
</style>
</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="24" class="title">${escapeXml(input.title)}</text>
<text x="10" y="44" class="subtitle">${escapeXml(input.subtitle)}</text>
${panels.join('\n')}
</svg>
`;
}
