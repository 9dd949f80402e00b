/**
 * `npm run bench -- [--quick] [options]` (see args.ts for the options, README.md for the method).
 *
 * stdout: a ghz-style report per scenario, a summary table, the targets, and as its LAST line one
 * JSON object (summary.ts). stderr: progress. A full run writes bench/results/<date>.json and
 * .svg and rewrites bench/RESULTS.md; a quick run writes bench/results/tmp/quick.{json,svg}.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { USAGE, UsageError, parseArgs } from './args';
import { renderChart } from './chart';
import {
  formatConvergenceTable,
  formatFailoverTable,
  formatFailoverTimelines,
  formatGhzCalibration,
  formatScenarioReport,
  formatStartupSkewTable,
  formatSummaryTable,
} from './report';
import { Resources } from './resources';
import { BASE_ENDPOINTS, CONVERGENCE_CONCURRENCY, DNS_INTERVAL_MS } from './convergence';
import { computeRatios } from './ratios';
import { resultsMarkdown } from './results-md';
import type { BenchRun } from './bench-run';
import { runBench } from './run-bench';
import { fleetReading, formatFleetTable } from './fleet';
import { formatMetricsCost } from './metrics-cost';
import { STARTUP_CALLS, startupSkewReading } from './startup-skew';
import { chartInput, resultsJson, summaryLine } from './summary';
import { checkTargets } from './targets';

const BENCH_DIR = path.resolve(__dirname, '..');
const RESULTS_DIR = path.join(BENCH_DIR, 'results');

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function printReport(run: BenchRun): void {
  const out: string[] = [];
  for (const report of [...run.closed, ...run.open, ...run.evenness]) {
    out.push(formatScenarioReport(report), '');
  }
  const reports = [...run.closed, ...run.evenness, ...run.open];
  if (reports.length > 0) {
    out.push('Medians per scenario:', formatSummaryTable(reports), '');
  }
  if (run.startup.length > 0) {
    out.push(
      `Startup skew: ${STARTUP_CALLS} calls sent at once on a new channel (fresh client process), ` +
        'before any endpoint is READY; each backend’s share of them:',
      formatStartupSkewTable(run.startup),
      startupSkewReading(run.startup),
      '',
    );
  }
  if (run.metricsCost) out.push(formatMetricsCost(run.metricsCost), '');
  if (run.fleet) {
    out.push(
      `Fleet (simulated, ${run.fleet.callsPerClient} calls per client, round robin): connections ` +
        'and calls per backend (by backend zone too), cross-zone calls, and the connections one ' +
        'backend added or removed ' +
        'opened / closed (clients changed):',
      formatFleetTable(run.fleet),
      fleetReading(run.fleet),
      '',
    );
  }
  if (run.ghz) {
    const g = run.ghz;
    const rounds = g.rounds.length;
    out.push(
      `ghz calibration: ghz ${g.ghzVersion} and our load generator (the direct scenario: ` +
        `${g.ourTarget}, pick_first) against the same backend, closed loop with ` +
        `${g.concurrency} calls in flight on one connection each, ${g.durationMs / 1000} s per ` +
        `run, ${rounds} interleaved round${rounds === 1 ? '' : 's'} (order alternating); ` +
        'medians; ratios are the median of the per-round ours / ghz:',
      formatGhzCalibration(g),
      '',
    );
  }
  if (run.failover.length > 0) {
    const first = run.failover[0]!;
    const rounds = first.rounds.length;
    out.push(
      `Failover: ${first.backends} backends, closed loop with ${first.concurrency} calls in ` +
        `flight, ${first.deadlineMs} ms deadline, fault at ${first.timing.faultAtMs / 1000} s of ` +
        `${first.timing.durationMs / 1000} s into ${first.badBackend}; window = the ` +
        `${first.timing.windowMs / 1000} s after the fault; medians of ${rounds} round${rounds === 1 ? '' : 's'}:`,
      formatFailoverTable(run.failover),
      '',
      'Failover timelines:',
      formatFailoverTimelines(run.failover),
      '',
    );
  }
  if (run.convergence.length > 0) {
    out.push(
      `Convergence: ${CONVERGENCE_CONCURRENCY} calls in flight (closed loop) on ${BASE_ENDPOINTS} ` +
        'registered backends; each round a third is added to the registry, then removed. ' +
        'add → first call = from the start of the registry write to the first call it answered; ' +
        'remove → last call = from the start of the removal to the last call it answered. ' +
        `dns+lb: looks again every ${DNS_INTERVAL_MS} ms, so DNS convergence is bounded by the ` +
        'interval (plus the write, the lookup and the connection); etcd, the Kubernetes API ' +
        'server and Consul push changes (a watch; a blocking query).',
      formatConvergenceTable(run.convergence),
      '',
    );
  }
  out.push('Targets:');
  for (const t of run.targets) {
    const verdict = t.met === null ? 'NOT MEASURED' : t.met ? 'met' : 'MISSED';
    out.push(`  [${verdict}] ${t.target}: ${t.measured}`);
  }
  for (const s of run.skipped) out.push(`  skipped ${s.name}: ${s.reason}`);
  for (const s of run.failed) out.push(`  FAILED ${s.name}: ${s.reason}`);
  out.push('');
  process.stdout.write(`${out.join('\n')}\n`);
}

/**
 * Lays out RESULTS.md's tables the way the repository's prettier check wants them, with the
 * workspace's own prettier when it is installed (it is a root devDependency, not the bench's).
 */
function formatWithPrettier(file: string): void {
  let bin: string;
  try {
    bin = require.resolve('prettier/bin/prettier.cjs', { paths: [path.dirname(BENCH_DIR)] });
  } catch {
    log('prettier not installed: RESULTS.md left unformatted');
    return;
  }
  const result = spawnSync(process.execPath, [bin, '--write', '--log-level', 'warn', file], {
    stdio: ['ignore', 2, 2],
  });
  if (result.status !== 0) log(`prettier could not format ${file}`);
}

/**
 * Rewrites the chart and RESULTS.md of a stored run with the current report code (after a change
 * to the report, say), recomputing ratios and targets from the stored scenarios.
 */
async function rerender(file: string): Promise<void> {
  const run = JSON.parse(await readFile(file, 'utf8')) as BenchRun;
  // Runs stored before these groups (and the failed list) existed have none.
  run.failover ??= [];
  run.convergence ??= [];
  run.startup ??= [];
  run.ghz ??= null;
  run.failed ??= [];
  run.ratios = computeRatios(run.closed, run.open, run.evenness);
  run.targets = checkTargets(run);
  await writeOutputs(run, path.dirname(path.resolve(file)), false);
  process.stdout.write(`${JSON.stringify(summaryLine(run))}\n`);
}

async function writeOutputs(run: BenchRun, outDir: string | null, withJson = true): Promise<void> {
  const quick = run.bench === 'quick';
  const dir = outDir ? path.resolve(outDir) : quick ? path.join(RESULTS_DIR, 'tmp') : RESULTS_DIR;
  await mkdir(dir, { recursive: true });
  const base = quick ? 'quick' : run.date;
  const jsonFile = path.join(dir, `${base}.json`);
  const svgFile = path.join(dir, `${base}.svg`);
  if (withJson) await writeFile(jsonFile, resultsJson(run));
  await writeFile(svgFile, renderChart(chartInput(run)));
  const written = withJson ? [jsonFile, svgFile] : [svgFile];
  log(`wrote ${written.map((file) => path.relative(process.cwd(), file)).join(' and ')}`);
  if (!quick) {
    const relative = (file: string) => path.relative(BENCH_DIR, file).split(path.sep).join('/');
    const markdown = resultsMarkdown(run, relative(svgFile), relative(jsonFile));
    const mdFile = path.join(BENCH_DIR, 'RESULTS.md');
    await writeFile(mdFile, markdown);
    formatWithPrettier(mdFile);
    log(`wrote ${path.relative(process.cwd(), mdFile)}`);
  }
}

/** Set on SIGINT/SIGTERM: whatever fails after that is a consequence, not worth a stack trace. */
let interrupted = false;

async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  if (options.reportOnly !== null) {
    await rerender(options.reportOnly);
    return 0;
  }

  const resources = new Resources();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every backend and proxy`);
    void resources.stopAll(log).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const profileDir = path.join(RESULTS_DIR, 'tmp', 'profiles');
  if (options.cpuProf) await mkdir(profileDir, { recursive: true });
  try {
    const run = await runBench(options, argv, log, resources, profileDir);
    printReport(run);
    await writeOutputs(run, options.outDir);
    log(`done in ${run.durationS} s`);
    for (const s of run.failed) log(`FAILED ${s.name}: ${s.reason}`);
    process.stdout.write(`${JSON.stringify(summaryLine(run))}\n`);
    return run.failed.length > 0 ? 1 : 0;
  } finally {
    await resources.stopAll(log);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (interrupted) return;
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
