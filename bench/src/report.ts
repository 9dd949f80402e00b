/**
 * ghz-style text reports: a scenario's summary, histogram, latency distribution, status codes and
 * per-backend distribution, and a table of every scenario's medians.
 */
import type { ConvergenceReport, Spread } from './convergence-stats';
import type { FailoverReport } from './failover-stats';
import type { GhzCalibrationReport } from './ghz';
import { type ScenarioReport, roundShares } from './results';
import type { ShareAnalysis } from './shares';
import { type StartupSkewReport, connectionsText, formatSortedShares } from './startup-skew';
import { PERCENTILES, percentileKey } from './stats';

const BAR = '∎';
const BAR_WIDTH = 40;

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

export function formatNumber(value: number | null, digits = 2): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  return value.toFixed(digits);
}

function bar(count: number, max: number): string {
  if (max <= 0 || count <= 0) return '';
  return BAR.repeat(Math.max(1, Math.round((count / max) * BAR_WIDTH)));
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function padStart(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

/** "1.004", or "∞ (2 of 3 backends idle)" when a backend got nothing. */
export function formatMaxMin(shares: ShareAnalysis): string {
  if (shares.maxMinShare !== null) return shares.maxMinShare.toFixed(3);
  return `∞ (${shares.idleBackends} of ${shares.backends} backends idle)`;
}

function loadDescription(report: ScenarioReport): string {
  const channels = report.channels > 1 ? `, ${report.channels} channels` : '';
  return report.mode === 'closed'
    ? `closed loop, ${report.concurrency} calls in flight${channels}`
    : `open loop, ${report.rate ?? '?'} calls/s offered (latency from intended send time)${channels}`;
}

export function formatScenarioReport(report: ScenarioReport): string {
  const m = report.merged;
  const lines: string[] = [];
  const rounds = report.rounds.length;
  lines.push(`=== ${report.name}: ${report.title}`);
  const discarded = report.discardedRounds.length;
  lines.push(
    `    ${loadDescription(report)}; ${rounds} round${rounds === 1 ? '' : 's'} merged` +
      (discarded > 0 ? ` (${discarded} disturbed by other load left out)` : ''),
  );
  lines.push('');
  lines.push('Summary:');
  lines.push(`  Count:\t${m.count}`);
  lines.push(`  Total:\t${formatMs(m.totalMs)}`);
  lines.push(`  Slowest:\t${formatMs(m.slowestMs)}`);
  lines.push(`  Fastest:\t${formatMs(m.fastestMs)}`);
  lines.push(`  Average:\t${formatMs(m.averageMs)}`);
  lines.push(`  Requests/sec:\t${formatNumber(m.rps)}`);
  lines.push(
    `  Per round:\t${report.rounds.map((r) => formatNumber(r.rps, 0)).join(' ')} rps; ` +
      `median ${formatNumber(report.median.rps, 0)} rps, ` +
      `p50 ${formatMs(report.median.p50Ms)}, p99 ${formatMs(report.median.p99Ms)}`,
  );
  const cpu = report.median;
  lines.push(
    `  CPU/call:\tclient ${formatNumber(cpu.clientCpuUs, 0)} µs` +
      (cpu.proxyCpuUs === null ? '' : `, proxy ${formatNumber(cpu.proxyCpuUs, 0)} µs`) +
      `, backends ${formatNumber(cpu.backendCpuUs, 0)} µs`,
  );
  lines.push('');
  lines.push('Response time histogram:');
  const maxCount = Math.max(0, ...m.histogram.map((b) => b.count));
  const labels = m.histogram.map((b) => b.upToMs.toFixed(3));
  const labelWidth = Math.max(0, ...labels.map((l) => l.length));
  const countWidth = Math.max(0, ...m.histogram.map((b) => String(b.count).length));
  m.histogram.forEach((bucket, i) => {
    lines.push(
      `  ${padStart(labels[i]!, labelWidth)} [${padStart(String(bucket.count), countWidth)}]\t|` +
        bar(bucket.count, maxCount),
    );
  });
  lines.push('');
  lines.push('Latency distribution:');
  for (const fraction of PERCENTILES) {
    const label = `${Number((fraction * 100).toFixed(1))} %`;
    lines.push(`  ${padStart(label, 6)} in ${formatMs(m.percentiles[percentileKey(fraction)])}`);
  }
  lines.push('');
  lines.push('Status code distribution:');
  for (const [name, count] of Object.entries(report.statusCounts).sort((a, b) => b[1] - a[1])) {
    lines.push(`  [${name}]\t${count} responses`);
  }
  for (const sample of report.errorSamples) lines.push(`  error: ${sample}`);
  lines.push('');
  lines.push('Per-backend distribution:');
  const entries = Object.entries(report.perBackend).sort((a, b) => a[0].localeCompare(b[0]));
  const total = entries.reduce((n, [, c]) => n + c, 0);
  const maxBackend = Math.max(0, ...entries.map(([, c]) => c));
  const addressWidth = Math.max(0, ...entries.map(([a]) => a.length));
  for (const [address, count] of entries) {
    const share = total > 0 ? (count / total) * 100 : 0;
    const expected = report.expectedShares?.[address];
    const wanted = expected === undefined ? '' : ` (configured ${(expected * 100).toFixed(1)} %)`;
    lines.push(
      `  ${pad(address, addressWidth)} ${padStart(String(count), 8)} ${padStart(share.toFixed(2), 6)} %${wanted}\t|` +
        bar(count, maxBackend),
    );
  }
  if (report.shares.idleBackends > 0) {
    lines.push(`  (${report.shares.idleBackends} backend(s) received no call)`);
  }
  lines.push(
    `  max/min share: ${formatMaxMin(report.shares)}; busiest backend: ` +
      `${(report.shares.busiestShare * 100).toFixed(1)} % of calls`,
  );
  if (report.rounds.length > 1 && report.shares.backends > 1) {
    const perRound = report.rounds.map(
      (r) => `${(r.shares.busiestShare * 100).toFixed(1)} % (${r.shares.idleBackends} idle)`,
    );
    lines.push(`  busiest backend per round: ${perRound.join(', ')}`);
  }
  if (report.shareErrorPp !== null) {
    lines.push(
      `  largest distance from the configured share: ${report.shareErrorPp.toFixed(3)} pp`,
    );
  }
  return lines.join('\n');
}

/** A plain-text table of the scenarios' medians (and L4/evenness shares). */
export function formatSummaryTable(reports: readonly ScenarioReport[]): string {
  const header = ['scenario', 'mode', 'rps', 'p50', 'p99', 'errors', 'max/min', 'cpu µs/call'];
  // max/min is per round (what one client saw), as in roundShares.
  const rows = reports.map((r) => {
    const cpu = r.median;
    const total = cpu.clientCpuUs + (cpu.proxyCpuUs ?? 0) + cpu.backendCpuUs;
    const perClient = roundShares(r);
    return [
      r.name,
      r.mode === 'closed' ? `c=${r.concurrency}` : `${r.rate ?? '?'}/s`,
      formatNumber(r.median.rps, 0),
      formatMs(r.median.p50Ms),
      formatMs(r.median.p99Ms),
      String(r.errors),
      perClient.maxMinShare === null
        ? `∞ (${perClient.idleBackends} idle)`
        : perClient.maxMinShare.toFixed(3),
      formatNumber(total, 0),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? pad(c, widths[i]!) : padStart(c, widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** "123 ms", or "not recovered" (null). */
export function formatRecovery(recoveryMs: number | null): string {
  return recoveryMs === null ? 'not recovered' : `${recoveryMs.toFixed(0)} ms`;
}

/** "UNAVAILABLE 12, DEADLINE_EXCEEDED 3", or "–" when nothing failed. */
export function formatStatusCounts(counts: Readonly<Record<string, number>>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '–' : entries.map(([name, n]) => `${name} ${n}`).join(', ');
}

function formatShare(share: number | null): string {
  return share === null ? 'n/a' : `${(share * 100).toFixed(1)} %`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], left: number) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i < left ? pad(c, widths[i]!) : padStart(c, widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * The failover group: per fault × policy, failed calls (medians over rounds; by status summed over
 * rounds), latency before the fault and in the window after it, the faulty backend's share of the
 * answers in that window, and the time to recovery.
 */
export function formatFailoverTable(reports: readonly FailoverReport[]): string {
  const header = [
    'fault',
    'policy',
    'rps',
    'failed',
    'failed by status (all rounds)',
    'p99 before',
    'window p50',
    'window p99',
    'window p99.9',
    'faulty share',
    'recovery',
  ];
  const rows = reports.map((r) => [
    r.fault,
    r.policy,
    formatNumber(r.median.rps, 0),
    formatNumber(r.median.failed, 0),
    formatStatusCounts(r.failedByStatus),
    formatMs(r.median.p99BeforeMs),
    formatMs(r.median.windowP50Ms),
    formatMs(r.median.windowP99Ms),
    formatMs(r.median.windowP999Ms),
    formatShare(r.median.windowBadShare),
    formatRecovery(r.median.recoveryMs) +
      (r.rounds.length > 1 ? ` (${r.recoveredRounds}/${r.rounds.length})` : ''),
  ]);
  return table(header, rows, 2);
}

/** Per slice of the first round: failed calls and the faulty backend's share, `|` at the fault. */
export function formatFailoverTimelines(reports: readonly FailoverReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    const first = r.rounds[0];
    if (!first) continue;
    const t = first.timeline;
    const cells = (values: readonly string[]) =>
      values.map((v, i) => (i === t.faultBucket ? `| ${v}` : v)).join(' ');
    lines.push(
      `  ${r.fault} × ${r.policy} (round 1, ${t.bucketMs} ms slices, | = fault at ` +
        `${first.faultAtMs.toFixed(0)} ms):`,
      `    failed     ${cells(t.failed.map(String))}`,
      `    faulty %   ${cells(t.ok.map((ok, i) => (ok > 0 ? ((t.bad[i]! / ok) * 100).toFixed(0) : '-')))}`,
    );
  }
  return lines.join('\n');
}

/** "123 ms", or "not converged" (a round that did not converge makes the percentile infinite). */
export function formatConvergenceMs(value: number): string {
  if (Number.isNaN(value)) return 'n/a';
  return Number.isFinite(value) ? `${value.toFixed(0)} ms` : 'not converged';
}

/** "p50 / p99 / max" of a spread, and how many rounds converged when not all did. */
export function formatSpread(s: Spread): string {
  const parts = [s.p50Ms, s.p99Ms, s.maxMs].map(formatConvergenceMs).join(' / ');
  return s.converged === s.rounds ? parts : `${parts} (${s.converged}/${s.rounds} converged)`;
}

/**
 * The convergence group: per resolver × client, rounds, change → first call and removal → last
 * call (p50 / p99 / max over rounds), failed calls, the registry writes' time and the target.
 */
export function formatConvergenceTable(reports: readonly ConvergenceReport[]): string {
  const header = [
    'scenario',
    'client',
    'interval',
    'rounds',
    'add → first call p50/p99/max',
    'remove → last call p50/p99/max',
    'failed',
    'write ms add/remove',
    'target',
  ];
  const rows = reports.map((r) => [
    r.name,
    r.client,
    r.intervalMs === null ? '–' : `${r.intervalMs} ms`,
    String(r.rounds.length),
    r.sawNewEndpoint ? formatSpread(r.firstCall) : 'never called',
    r.sawNewEndpoint ? formatSpread(r.lastCall) : '–',
    r.failedCalls === 0 ? '0' : `${r.failedCalls} (${formatStatusCounts(r.failedByStatus)})`,
    `${formatNumber(r.addWriteMs, 0)}/${formatNumber(r.removeWriteMs, 0)}`,
    r.goal === null ? '–' : r.goal.met ? 'met' : 'MISSED',
  ]);
  return table(header, rows, 2);
}

/**
 * The ghz calibration: medians of ghz and of our generator on the same backend, their per-round
 * throughput, and ours / ghz (median of the per-round ratios).
 */
export function formatGhzCalibration(report: GhzCalibrationReport): string {
  const header = [
    'client',
    'rps',
    'p50',
    'p99',
    'errors',
    'client µs/call',
    'backend µs/call',
    'rps per round',
  ];
  const row = (who: 'ghz' | 'ours', label: string) => {
    const m = report.median[who];
    return [
      label,
      formatNumber(m.rps, 0),
      formatMs(m.p50Ms),
      formatMs(m.p99Ms),
      String(report.errors[who]),
      formatNumber(m.clientCpuUs, 0),
      formatNumber(m.backendCpuUs, 0),
      report.rounds.map((r) => formatNumber(r[who].rps, 0)).join(' '),
    ];
  };
  const r = report.ratios;
  const ratio = (value: number | null) => (value === null ? 'n/a' : `${value.toFixed(3)}×`);
  const rows = [
    row('ghz', `ghz ${report.ghzVersion}`),
    row('ours', 'ours (direct)'),
    ['ours / ghz', ratio(r.rps), ratio(r.p50), ratio(r.p99), '', ratio(r.clientCpu), '', ''],
  ];
  const lines = [table(header, rows, 1)];
  for (const who of ['ghz', 'ours'] as const) {
    const statuses = Object.entries(report.statusCounts[who])
      .map(([name, n]) => `${name} ${n}`)
      .join(', ');
    lines.push(`  ${who} status codes: ${statuses || 'none'}`);
    for (const sample of report.errorSamples[who]) lines.push(`  ${who} error: ${sample}`);
  }
  lines.push(`  ghz command: ${report.ghzCommand}`);
  return lines.join('\n');
}

/**
 * The startup-skew group: per client × case (backend set; connections completing together or
 * staggered), the largest share of a new channel's first calls (mean and worst over rounds)
 * against the even split's, idle backends, failed calls, the time from the first send to the last
 * answer (mean and worst), and every round's shares, largest first, in %.
 */
export function formatStartupSkewTable(reports: readonly StartupSkewReport[]): string {
  const header = [
    'client',
    'backends',
    'connecting',
    'rounds',
    'largest share mean',
    'worst',
    'even split',
    'idle mean/worst',
    'failed',
    'elapsed ms mean/worst',
    'shares % per round (largest first)',
  ];
  const rows = reports.map((r) => [
    r.client,
    String(r.backends),
    connectionsText(r.staggerMs),
    String(r.rounds.length),
    formatShare(r.largestShare.mean),
    formatShare(r.largestShare.worst),
    formatShare(r.evenShare),
    `${formatNumber(r.idleBackends.mean, 1)}/${formatNumber(r.idleBackends.worst, 0)}`,
    r.failedCalls === 0 ? '0' : `${r.failedCalls} (${formatStatusCounts(r.failedByStatus)})`,
    `${formatNumber(r.elapsedMs?.mean ?? null, 0)}/${formatNumber(r.elapsedMs?.worst ?? null, 0)}`,
    r.rounds.map((round) => formatSortedShares(round.shares)).join(' | '),
  ]);
  return table(header, rows, 1);
}
