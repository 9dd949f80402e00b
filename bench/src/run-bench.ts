/**
 * One bench invocation: start the backends and proxies, run every scenario interleaved for several
 * rounds (closed loop, then open loop), the evenness cases on a larger backend set, the startup
 * skew of a new channel, the ghz calibration, failover and convergence groups, then the
 * in-process micro benchmarks; stop everything; return the aggregated results.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BackendSet, startBackends } from '@grpc-lb/test/harness';
import type { BenchOptions } from './args';
import type { BenchRun } from './bench-run';
import { convergencePhase } from './convergence-run';
import { failoverPhase } from './failover-run';
import { ghzPhase } from './ghz-run';
import { machineInfo } from './machine';
import { FLEET, type FleetReport, fleetWanted } from './fleet';
import type { MicroResults } from './micro';
import { cpuMsOf, machineBusyMs } from './proc-cpu';
import { type ProxyAvailability, ensureProxies, startHaproxy, startNginx } from './proxies';
import { computeRatios } from './ratios';
import {
  type RunRecord,
  type ScenarioReport,
  aggregate,
  roundOtherLoad,
  summarizeRound,
} from './results';
import { Resources } from './resources';
import {
  type BackendInfo,
  NAMES,
  type ScenarioDef,
  VERSION_LABELS,
  evennessL4Scenario,
  evennessScenario,
  mainScenarios,
} from './scenarios';
import { type ServerProcess, freePort } from './server-process';
import { metricsCostPhase } from './metrics-cost-run';
import { startupSkewPhase } from './startup-skew-run';
import { checkTargets } from './targets';
import { type Outcome, recordUnavailable } from './unavailable';
import type { LoadMode } from './load-generator';
import type { LoadSpec } from './worker-protocol';
import { runFleetInWorker, runLoadInWorker, runMicroInWorker } from './worker-process';

type Log = (line: string) => void;

const CALL_DEADLINE_MS = 10_000;
const READY_TIMEOUT_MS = 10_000;
/** Open loop: calls in flight beyond which sends wait (their delay still counts as latency). */
const OPEN_LOOP_MAX_IN_FLIGHT = 2000;
/** Count-bounded runs (evenness) are given this many ms per call, and at least a minute. */
const MS_PER_COUNTED_CALL = 2;

function backendInfo(set: BackendSet): BackendInfo[] {
  return set.backends.map((b) => ({
    address: b.address,
    host: b.host,
    port: b.port,
    labels: b.labels,
  }));
}

function wanted(options: BenchOptions, name: string): boolean {
  return options.scenarios === null || options.scenarios.includes(name);
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Context {
  options: BenchOptions;
  log: Log;
  resources: Resources;
  profileDir: string;
}

interface Participants {
  backends: BackendSet;
  proxies: Partial<Record<'nginx' | 'haproxy', ServerProcess>>;
}

async function runOnce(
  ctx: Context,
  def: ScenarioDef,
  participants: Participants,
  mode: LoadMode,
  round: number,
  bound: { count: number | null; durationMs: number | null },
): Promise<RunRecord> {
  const { options } = ctx;
  const spec: LoadSpec = {
    scenario: def.name,
    target: def.target,
    channelOptions: def.channelOptions,
    channels: def.channels,
    mode,
    concurrency: mode === 'closed' ? options.concurrency : OPEN_LOOP_MAX_IN_FLIGHT,
    rate: options.rate,
    count: bound.count,
    durationMs: bound.durationMs,
    warmupMs: options.warmupMs,
    deadlineMs: CALL_DEADLINE_MS,
    readyTimeoutMs: READY_TIMEOUT_MS,
  };
  const proxy = def.proxy === null ? undefined : participants.proxies[def.proxy];
  const backendPids = () => participants.backends.backends.map((b) => b.pid);
  const proxyPids = () => (proxy ? [proxy.pid] : []);
  let proxyCpuStart = NaN;
  let backendCpuStart = NaN;
  let machineStart = NaN;
  let windowStart = NaN;
  let proxyCpuMs = NaN;
  let backendCpuMs = NaN;
  let machineCpuMs = NaN;
  let windowMs = NaN;
  const profile = options.cpuProf
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${ctx.profileDir}`,
        `--cpu-prof-name=${def.name}-${mode}-round${round}.cpuprofile`,
      ]
    : [];
  const timeoutMs =
    options.warmupMs +
    READY_TIMEOUT_MS +
    (bound.durationMs ?? 0) +
    Math.max(60_000, (bound.count ?? 0) * MS_PER_COUNTED_CALL) +
    CALL_DEADLINE_MS;
  const result = await runLoadInWorker(spec, {
    execArgv: profile,
    timeoutMs,
    onWindow: (phase) => {
      if (phase === 'start') {
        windowStart = performance.now();
        machineStart = machineBusyMs();
        proxyCpuStart = proxy ? cpuMsOf(proxyPids()) : NaN;
        backendCpuStart = cpuMsOf(backendPids());
      } else {
        proxyCpuMs = proxy ? cpuMsOf(proxyPids()) - proxyCpuStart : NaN;
        backendCpuMs = cpuMsOf(backendPids()) - backendCpuStart;
        machineCpuMs = machineBusyMs() - machineStart;
        windowMs = performance.now() - windowStart;
      }
    },
  });
  return { round, result, proxyCpuMs, backendCpuMs, machineCpuMs, windowMs };
}

function roundLine(def: ScenarioDef, record: RunRecord): string {
  const r = summarizeRound(record, def.backends);
  const other = r.otherCores === null ? '' : `, other load ${r.otherCores.toFixed(2)} cores`;
  return (
    `${def.name}: ${r.count} calls, ${r.rps.toFixed(0)} rps, p50 ${r.p50Ms.toFixed(3)} ms, ` +
    `p99 ${r.p99Ms.toFixed(3)} ms, errors ${r.errors}${other}`
  );
}

async function interleaved(
  ctx: Context,
  scenarios: readonly ScenarioDef[],
  participants: Participants,
  mode: LoadMode,
  rounds: number,
): Promise<ScenarioReport[]> {
  const { quietThreshold, extraRounds } = ctx.options;
  const quiet: RunRecord[][] = [];
  const disturbed: RunRecord[][] = [];
  for (let round = 1; quiet.length < rounds && round <= rounds + extraRounds; round++) {
    const records: RunRecord[] = [];
    for (const def of scenarios) {
      const record = await runOnce(ctx, def, participants, mode, round, {
        count: null,
        durationMs: ctx.options.durationMs,
      });
      records.push(record);
      ctx.log(`[${mode} ${round}] ${roundLine(def, record)}`);
    }
    const other = roundOtherLoad(records);
    if (quietThreshold !== null && other > quietThreshold) {
      disturbed.push(records);
      const left = rounds + extraRounds - round;
      ctx.log(
        `[${mode} ${round}] disturbed: other processes used up to ${other.toFixed(2)} cores ` +
          `(threshold ${quietThreshold}); ${left > 0 ? 'repeating the round' : 'no rounds left'}`,
      );
    } else {
      quiet.push(records);
    }
  }
  // With no quiet round at all, the disturbed ones are all there is: use them (the report says so).
  const used = quiet.length > 0 ? quiet : disturbed;
  const left = quiet.length > 0 ? disturbed : [];
  return scenarios.map((def, i) =>
    aggregate(
      def,
      {
        mode,
        concurrency: mode === 'closed' ? ctx.options.concurrency : OPEN_LOOP_MAX_IN_FLIGHT,
        rate: mode === 'open' ? ctx.options.rate : null,
      },
      used.map((records) => records[i]!),
      left.map((records) => records[i]!),
    ),
  );
}

/**
 * A proxy scenario that cannot run. Proxies turned off (`--no-proxies`) or not selected: a skip.
 * Missing or failing to start: a skip — or, with CI=true, a failure, as for every other server.
 */
export function proxyUnavailable(
  ctx: { log: (line: string) => void },
  name: string,
  reason: string,
  skipped: Outcome[],
  failed: Outcome[],
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (reason === '--no-proxies' || reason === 'not selected') {
    skipped.push({ name, reason });
    return;
  }
  recordUnavailable(ctx.log, name, reason, skipped, failed, env);
}

async function startProxy<T>(
  ctx: Context,
  what: string,
  skipped: Outcome[],
  failed: Outcome[],
  names: readonly string[],
  start: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await start();
  } catch (error) {
    for (const name of names) {
      proxyUnavailable(ctx, name, `${what}: ${describeError(error)}`, skipped, failed);
    }
    return undefined;
  }
}

/** The scenarios of the main phase (those `mainScenarios()` can make). */
const MAIN_NAMES: readonly string[] = [
  NAMES.direct,
  NAMES.grpcJsRoundRobin,
  NAMES.ours,
  NAMES.oursWeighted,
  NAMES.oursTrafficSplit,
  NAMES.nginx,
  NAMES.haproxyH2,
  NAMES.haproxyTcp,
];

/** The main backend set, its proxies, and the interleaved closed- and open-loop rounds. */
async function mainPhase(
  ctx: Context,
  tmp: string,
  available: ProxyAvailability,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<{ closed: ScenarioReport[]; open: ScenarioReport[] }> {
  const { options, log, resources } = ctx;
  if (!MAIN_NAMES.some((name) => wanted(options, name))) return { closed: [], open: [] };
  const labels =
    options.backends === VERSION_LABELS.length
      ? VERSION_LABELS.map((version) => ({ version }))
      : undefined;
  log(`starting ${options.backends} backends`);
  const backends = await startBackends({ count: options.backends, ...(labels ? { labels } : {}) });
  const stopBackends = resources.add('main backends', () => backends.stopAll());
  const upstreams = backends.backends.map((b) => ({ host: b.host, port: b.port }));
  const participants: Participants = { backends, proxies: {} };
  const stops: (() => Promise<void>)[] = [stopBackends];

  let nginxPort: number | null = null;
  if (!available.nginx.ok) {
    proxyUnavailable(ctx, NAMES.nginx, available.nginx.reason, skipped, failed);
  } else if (wanted(options, NAMES.nginx)) {
    const port = await freePort();
    const nginx = await startProxy(ctx, 'nginx', skipped, failed, [NAMES.nginx], () =>
      startNginx(path.join(tmp, 'nginx'), port, upstreams, Math.max(64, options.concurrency * 2)),
    );
    if (nginx) {
      stops.push(resources.add('nginx', () => nginx.stop()));
      participants.proxies.nginx = nginx;
      nginxPort = port;
      log(`nginx ${nginx.pid} listening on 127.0.0.1:${port}`);
    }
  }

  let haproxyH2Port: number | null = null;
  let haproxyTcpPort: number | null = null;
  const haproxyNames = [NAMES.haproxyH2, NAMES.haproxyTcp].filter((n) => wanted(options, n));
  if (!available.haproxy.ok) {
    for (const name of [NAMES.haproxyH2, NAMES.haproxyTcp]) {
      proxyUnavailable(ctx, name, available.haproxy.reason, skipped, failed);
    }
  } else if (haproxyNames.length > 0) {
    const h2 = await freePort();
    const tcp = await freePort();
    const haproxy = await startProxy(ctx, 'haproxy', skipped, failed, haproxyNames, () =>
      startHaproxy(path.join(tmp, 'haproxy'), 'haproxy', [
        { name: 'h2', mode: 'h2', listenPort: h2, upstreams },
        { name: 'tcp', mode: 'tcp', listenPort: tcp, upstreams },
      ]),
    );
    if (haproxy) {
      stops.push(resources.add('haproxy', () => haproxy.stop()));
      participants.proxies.haproxy = haproxy;
      haproxyH2Port = h2;
      haproxyTcpPort = tcp;
      log(`haproxy ${haproxy.pid} listening on 127.0.0.1:${h2} (h2) and :${tcp} (tcp)`);
    }
  }

  try {
    const scenarios = mainScenarios({
      backends: backendInfo(backends),
      nginxPort,
      haproxyH2Port,
      haproxyTcpPort,
    }).filter((s) => wanted(options, s.name));
    log(`scenarios: ${scenarios.map((s) => s.name).join(', ')}`);
    const closed =
      scenarios.length > 0
        ? await interleaved(ctx, scenarios, participants, 'closed', options.rounds)
        : [];
    // The L4 case pins one connection to one backend whatever the mode; open loop adds nothing.
    const openScenarios = scenarios.filter((s) => s.name !== NAMES.haproxyTcp);
    const open =
      options.openRounds > 0 && openScenarios.length > 0
        ? await interleaved(ctx, openScenarios, participants, 'open', options.openRounds)
        : [];
    return { closed, open };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/** Evenness over a larger set: our round robin by call count, and HAProxy mode tcp for contrast. */
async function evennessPhase(
  ctx: Context,
  tmp: string,
  available: ProxyAvailability,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ScenarioReport[]> {
  const { options, log, resources } = ctx;
  const runOurs = wanted(options, NAMES.evenness);
  let runL4 = wanted(options, NAMES.evennessL4);
  if (runL4 && !available.haproxy.ok) {
    proxyUnavailable(ctx, NAMES.evennessL4, available.haproxy.reason, skipped, failed);
    runL4 = false;
  }
  if (!runOurs && !runL4) return [];
  log(`starting ${options.evennessBackends} backends for the evenness scenarios`);
  const backends = await startBackends({ count: options.evennessBackends });
  const stops = [resources.add('evenness backends', () => backends.stopAll())];
  const participants: Participants = { backends, proxies: {} };
  const infos = backendInfo(backends);
  const reports: ScenarioReport[] = [];
  try {
    if (runOurs) {
      const def = evennessScenario(infos);
      const record = await runOnce(ctx, def, participants, 'closed', 1, {
        count: options.evennessCalls,
        durationMs: null,
      });
      log(`[evenness] ${roundLine(def, record)}`);
      reports.push(
        aggregate(def, { mode: 'closed', concurrency: options.concurrency, rate: null }, [record]),
      );
    }
    if (runL4) {
      const port = await freePort();
      const upstreams = infos.map((b) => ({ host: b.host, port: b.port }));
      const haproxy = await startProxy(
        ctx,
        'haproxy (evenness)',
        skipped,
        failed,
        [NAMES.evennessL4],
        () =>
          startHaproxy(path.join(tmp, 'haproxy-evenness'), 'haproxy-evenness', [
            { name: 'tcp', mode: 'tcp', listenPort: port, upstreams },
          ]),
      );
      if (haproxy) {
        stops.push(resources.add('haproxy (evenness)', () => haproxy.stop()));
        participants.proxies.haproxy = haproxy;
        const def = evennessL4Scenario(infos, port, options.l4Channels);
        const record = await runOnce(ctx, def, participants, 'closed', 1, {
          count: null,
          durationMs: options.durationMs,
        });
        log(`[evenness] ${roundLine(def, record)}`);
        reports.push(
          aggregate(def, { mode: 'closed', concurrency: options.concurrency, rate: null }, [
            record,
          ]),
        );
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
  return reports;
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

export async function runBench(
  options: BenchOptions,
  argv: readonly string[],
  log: Log,
  resources: Resources,
  profileDir: string,
): Promise<BenchRun> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const skipped: { name: string; reason: string }[] = [];
  const failed: { name: string; reason: string }[] = [];
  const needsProxies =
    options.proxies &&
    [NAMES.nginx, NAMES.haproxyH2, NAMES.haproxyTcp, NAMES.evennessL4].some((n) =>
      wanted(options, n),
    );
  const available: ProxyAvailability = needsProxies
    ? ensureProxies(log)
    : {
        nginx: { ok: false, reason: options.proxies ? 'not selected' : '--no-proxies' },
        haproxy: { ok: false, reason: options.proxies ? 'not selected' : '--no-proxies' },
      };
  const machine = machineInfo({
    nginx: available.nginx.ok ? available.nginx.version : null,
    haproxy: available.haproxy.ok ? available.haproxy.version : null,
  });
  log(
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ` +
      `node ${machine.node}, grpc-js ${machine.grpcJs}, load ${machine.loadAverage}`,
  );

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'grpc-lb-bench-'));
  const removeTmp = resources.add('temp dir', () => rm(tmp, { recursive: true, force: true }));
  const ctx: Context = { options, log, resources, profileDir };
  let closed: ScenarioReport[];
  let open: ScenarioReport[];
  let evenness: ScenarioReport[];
  try {
    ({ closed, open } = await mainPhase(ctx, tmp, available, skipped, failed));
    evenness = await evennessPhase(ctx, tmp, available, skipped, failed);
  } finally {
    await removeTmp();
  }
  const startup = await startupSkewPhase(ctx);
  const metricsCost = await metricsCostPhase(ctx);
  const ghz = await ghzPhase(
    ctx,
    (def, backends, round) =>
      runOnce(ctx, def, { backends, proxies: {} }, 'closed', round, {
        count: null,
        durationMs: options.durationMs,
      }),
    skipped,
    failed,
  );
  const failover = await failoverPhase(ctx);
  const convergence = await convergencePhase(ctx, skipped, failed);

  let micro: MicroResults | null = null;
  let microError: string | null = null;
  if (options.micro) {
    log('micro benchmarks (in-process pick and update cost, separate process with --expose-gc)');
    try {
      micro = await runMicroInWorker(options.quick, {
        execArgv: ['--expose-gc'],
        timeoutMs: 20 * 60_000,
        onLog: (line) => log(`[micro] ${line}`),
      });
    } catch (error) {
      microError = describeError(error);
      log(`micro benchmarks failed: ${microError}`);
    }
  }

  let fleet: FleetReport | null = null;
  let fleetError: string | null = null;
  if (options.fleet && fleetWanted(options.scenarios)) {
    log(
      `${FLEET}: subsetting and zone-aware routing simulated over 1,000 clients × 1,000 backends (separate process)`,
    );
    try {
      fleet = await runFleetInWorker(options.quick, {
        execArgv: [],
        timeoutMs: 10 * 60_000,
        onLog: (line) => log(`[${FLEET}] ${line}`),
      });
    } catch (error) {
      fleetError = describeError(error);
      log(`${FLEET} failed: ${fleetError}`);
    }
  }

  const ratios = computeRatios(closed, open, evenness);
  const run: BenchRun = {
    bench: options.quick ? 'quick' : 'full',
    date: options.date ?? today(),
    command: ['npm run bench --', ...argv].join(' ').replace(/ --$/, ''),
    startedAt,
    durationS: 0,
    machine,
    settings: {
      rounds: options.rounds,
      openRounds: options.openRounds,
      quietThreshold: options.quietThreshold,
      extraRounds: options.extraRounds,
      durationMs: options.durationMs,
      warmupMs: options.warmupMs,
      concurrency: options.concurrency,
      rate: options.rate,
      backends: options.backends,
      evennessBackends: options.evennessBackends,
      evennessCalls: options.evennessCalls,
      l4Channels: options.l4Channels,
      failoverRounds: options.failoverRounds,
      convergenceRounds: options.convergenceRounds,
      ghzRounds: options.ghzRounds,
      startupRounds: options.startupRounds,
      metricsRounds: options.metricsRounds,
    },
    closed,
    open,
    evenness,
    failover,
    convergence,
    startup,
    metricsCost,
    ghz,
    skipped,
    failed,
    ratios,
    micro,
    microError,
    fleet,
    fleetError,
    targets: [],
  };
  run.targets = checkTargets(run);
  run.durationS = Math.round((performance.now() - started) / 100) / 10;
  return run;
}
