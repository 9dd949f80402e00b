/**
 * The metrics-cost phase: on `--backends` fresh backends, each round runs the grpc-lb round robin
 * client once with OpenTelemetry metrics ON and once OFF (`LoadSpec.metrics`), each in a fresh
 * worker process, closed loop at `--concurrency` for `--duration` after `--warmup`; ON first in
 * odd rounds, OFF first in even ones, so that drift within a round does not favour either.
 */
import { startBackends } from '@grpc-lb/test/harness';
import type { BenchOptions } from './args';
import {
  METRICS_COST,
  type MetricsCostReport,
  type MetricsCostRun,
  aggregateMetricsCost,
  formatMetricsCost,
  metricsCostWanted,
} from './metrics-cost';
import type { Resources } from './resources';
import { staticTarget } from './scenarios';
import type { LoadSpec } from './worker-protocol';
import { runLoadInWorker } from './worker-process';

const DEADLINE_MS = 10_000;

export interface MetricsCostContext {
  options: BenchOptions;
  log: (line: string) => void;
  resources: Resources;
  profileDir: string;
}

async function runOne(
  ctx: MetricsCostContext,
  target: string,
  metrics: boolean,
  round: number,
): Promise<MetricsCostRun> {
  const { options, profileDir } = ctx;
  const name = `${METRICS_COST}-${metrics ? 'on' : 'off'}`;
  const spec: LoadSpec = {
    scenario: name,
    target,
    channelOptions: {},
    channels: 1,
    mode: 'closed',
    concurrency: options.concurrency,
    rate: options.rate,
    count: null,
    durationMs: options.durationMs,
    warmupMs: options.warmupMs,
    deadlineMs: DEADLINE_MS,
    readyTimeoutMs: DEADLINE_MS,
    metrics,
  };
  const profile = options.cpuProf
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${profileDir}`,
        `--cpu-prof-name=${name}-round${round}.cpuprofile`,
      ]
    : [];
  const result = await runLoadInWorker(spec, {
    execArgv: profile,
    timeoutMs: options.warmupMs + options.durationMs + 60_000,
  });
  const calls = result.latenciesMs.length;
  let errors = 0;
  for (const [code, count] of Object.entries(result.statusCounts))
    if (code !== '0') errors += count;
  return {
    rps: result.totalMs > 0 ? (calls * 1000) / result.totalMs : NaN,
    cpuUsPerCall: calls > 0 ? (result.clientCpuMs * 1000) / calls : NaN,
    errors,
  };
}

export async function metricsCostPhase(ctx: MetricsCostContext): Promise<MetricsCostReport | null> {
  const { options, log, resources } = ctx;
  const rounds = options.metricsRounds;
  if (rounds === 0 || !metricsCostWanted(options.scenarios)) return null;
  log(`starting ${options.backends} backends for the metrics-cost scenarios`);
  const set = await startBackends({ count: options.backends });
  const stop = resources.add('metrics-cost backends', () => set.stopAll());
  try {
    const target = staticTarget(
      set.backends.map((b) => ({ address: b.address, host: b.host, port: b.port, labels: {} })),
    );
    const results: { round: number; on: MetricsCostRun; off: MetricsCostRun }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [true, false] : [false, true];
      const runs = new Map<boolean, MetricsCostRun>();
      for (const metrics of order) {
        const run = await runOne(ctx, target, metrics, round);
        runs.set(metrics, run);
        log(
          `[${METRICS_COST} ${round}] metrics ${metrics ? 'ON ' : 'OFF'}: ${run.rps.toFixed(0)} rps, ` +
            `${run.cpuUsPerCall.toFixed(1)} µs client CPU/call` +
            (run.errors > 0 ? `, ${run.errors} failed` : ''),
        );
      }
      results.push({ round, on: runs.get(true)!, off: runs.get(false)! });
    }
    const report = aggregateMetricsCost(results);
    log(formatMetricsCost(report));
    return report;
  } finally {
    await stop();
  }
}
