/**
 * The startup-skew phase: on `--evenness-backends` fresh backends (and on their first 3), each
 * round runs each client once per case in a fresh worker process with a fresh channel that sends
 * STARTUP_CALLS calls at once without waiting for READY (`LoadSpec.coldStart`); which backends
 * answered them is the measure. Within a case the clients run in turn, in the reverse order in
 * even rounds. The staggered cases reach each backend through a DelayedForwarder of its own.
 */
import { startBackends } from '@grpc-lb/test/harness';
import type { BenchOptions } from './args';
import { DelayedForwarder } from './delayed-forwarder';
import type { Resources } from './resources';
import type { ScenarioDef } from './scenarios';
import {
  STARTUP_CALLS,
  type StartupSkewReport,
  type StartupSkewRound,
  aggregateStartupSkew,
  connectionsText,
  formatSortedShares,
  startupCases,
  startupClients,
  startupSkewWanted,
  summarizeStartupRound,
} from './startup-skew';
import type { LoadSpec } from './worker-protocol';
import { runLoadInWorker } from './worker-process';

type Log = (line: string) => void;

/** Per call: the connections are made within it, so it is generous. */
const DEADLINE_MS = 10_000;
/** A worker answers within this (its start, the connections, 100 calls). */
const RUN_TIMEOUT_MS = 60_000;

export interface StartupSkewContext {
  options: BenchOptions;
  log: Log;
  resources: Resources;
  profileDir: string;
}

interface Planned {
  def: ScenarioDef;
  /** The set's backend addresses (what the replies name), in the target's order. */
  backends: string[];
  staggerMs: number;
}

async function runOne(
  planned: Planned,
  round: number,
  profile: readonly string[],
): Promise<StartupSkewRound> {
  const { def } = planned;
  const spec: LoadSpec = {
    scenario: `${def.name}@${planned.backends.length}+${planned.staggerMs}ms`,
    target: def.target,
    channelOptions: def.channelOptions,
    channels: 1,
    mode: 'closed',
    concurrency: STARTUP_CALLS,
    rate: 1,
    count: STARTUP_CALLS,
    durationMs: null,
    warmupMs: 0,
    deadlineMs: DEADLINE_MS,
    readyTimeoutMs: DEADLINE_MS,
    coldStart: true,
  };
  const result = await runLoadInWorker(spec, { execArgv: [...profile], timeoutMs: RUN_TIMEOUT_MS });
  return summarizeStartupRound({
    round,
    calls: STARTUP_CALLS,
    backends: planned.backends,
    perBackend: result.perBackend,
    statusCounts: result.statusCounts,
    totalMs: result.totalMs,
  });
}

function runLine(planned: Planned, r: StartupSkewRound): string {
  const failed = r.failed > 0 ? `, ${r.failed} failed` : '';
  const largest = r.largestShare === null ? 'n/a' : `${(r.largestShare * 100).toFixed(0)} %`;
  return (
    `${planned.def.name}, ${planned.backends.length} backends connecting ` +
    `${connectionsText(planned.staggerMs)}: largest share ${largest} ` +
    `(${r.busiestBackend ?? 'none'}), shares ${formatSortedShares(r.shares)}, ` +
    `${r.idleBackends} idle${failed}, ${r.totalMs.toFixed(0)} ms`
  );
}

export async function startupSkewPhase(ctx: StartupSkewContext): Promise<StartupSkewReport[]> {
  const { options, log, resources, profileDir } = ctx;
  const rounds = options.startupRounds;
  if (rounds === 0 || !startupSkewWanted(options.scenarios)) return [];
  log(`starting ${options.evennessBackends} backends for the startup-skew scenarios`);
  const set = await startBackends({ count: options.evennessBackends });
  const forwarders: DelayedForwarder[] = [];
  const stop = resources.add('startup-skew backends', async () => {
    await Promise.all(forwarders.map((f) => f.close()));
    await set.stopAll();
  });
  try {
    const infos = set.backends.map((b) => ({
      address: b.address,
      host: b.host,
      port: b.port,
      labels: {},
    }));
    // Per case, its clients' indices in `plan`.
    const plan: Planned[] = [];
    const byCase: number[][] = [];
    for (const { backends, staggerMs } of startupCases(infos)) {
      let reach = backends;
      if (staggerMs > 0) {
        reach = [];
        for (const [i, b] of backends.entries()) {
          const forwarder = await DelayedForwarder.start({
            upstream: { host: b.host, port: b.port },
            delayMs: i * staggerMs,
          });
          forwarders.push(forwarder);
          // The target names the forwarder; the replies (and `address`) name the backend.
          reach.push({ ...b, host: forwarder.host, port: forwarder.port });
        }
      }
      byCase.push(
        startupClients(reach).map((def) => {
          plan.push({ def, backends: backends.map((b) => b.address), staggerMs });
          return plan.length - 1;
        }),
      );
    }
    log(
      `startup-skew: ${plan.length} client × case runs × ${rounds} round(s), ${STARTUP_CALLS} ` +
        'calls sent at once on a new channel each',
    );
    const results: StartupSkewRound[][] = plan.map(() => []);
    for (let round = 1; round <= rounds; round++) {
      // Within a case the clients run in turn, in the reverse order in even rounds.
      const order = byCase.flatMap((indices) =>
        round % 2 === 0 ? [...indices].reverse() : indices,
      );
      for (const i of order) {
        const planned = plan[i]!;
        const profile = options.cpuProf
          ? [
              '--cpu-prof',
              `--cpu-prof-dir=${profileDir}`,
              `--cpu-prof-name=startup-skew-${planned.def.name}-${planned.backends.length}` +
                `-${planned.staggerMs}ms-round${round}.cpuprofile`,
            ]
          : [];
        const summary = await runOne(planned, round, profile);
        results[i]!.push(summary);
        log(`[startup-skew ${round}] ${runLine(planned, summary)}`);
      }
    }
    return plan.map((planned, i) =>
      aggregateStartupSkew(
        {
          client: planned.def.name,
          title: planned.def.title,
          backends: planned.backends.length,
          staggerMs: planned.staggerMs,
          calls: STARTUP_CALLS,
        },
        results[i]!,
      ),
    );
  } finally {
    await stop();
  }
}
