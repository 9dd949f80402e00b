/**
 * The convergence phase. For each resolver: its server (bind9 or etcd, once per group), 3 harness
 * backends of which 2 are registered, and one load-worker run (closed loop, CONVERGENCE_CONCURRENCY
 * calls in flight, every call traced) on a client through the resolver, during which the third
 * backend is added to the registry and removed again, round after round, on a fixed schedule
 * (convergence.ts). The change times are taken on the worker's clock (performance.timeOrigin +
 * performance.now() in both processes), and the trace says when the endpoint answered.
 *
 * DNS is also run once (one round) through grpc-js's built-in `dns:` resolver, in a worker started
 * with GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true (read by grpc-js when it loads) so that it asks the
 * same bind9 (examples/headless-dns does the same with use-c-ares.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type EtcdRegistration, registerEndpoint } from '@grpc-lb/resolver-etcd';
import { type Backend, startBackends } from '@grpc-lb/test/harness';
import { type Bind9, startBind9 } from '@grpc-lb/test/support/bind9';
import { type Etcd, startEtcd } from '@grpc-lb/test/support/etcd';
import type { BenchOptions } from './args';
import {
  BASE_ENDPOINTS,
  CONVERGENCE_CONCURRENCY,
  CONVERGENCE_DEADLINE_MS,
  type ConvergenceClient,
  type ConvergenceResolver,
  DNS_INTERVAL_MS,
  ETCD_SERVICE,
  builtinDnsTarget,
  convergenceSchedule,
  convergenceScenarioName,
  convergenceTiming,
  convergenceWanted,
  dnsAdd,
  dnsDelete,
  dnsLbTarget,
  etcdTarget,
} from './convergence';
import {
  type ConvergenceEvent,
  type ConvergenceReport,
  summarizeConvergenceRun,
} from './convergence-stats';
import type { Resources } from './resources';
import type { LoadSpec } from './worker-protocol';
import { runLoadInWorker } from './worker-process';

type Log = (line: string) => void;

const READY_TIMEOUT_MS = 10_000;
const LEASE_TTL_SECONDS = 10;

export interface ConvergenceContext {
  options: BenchOptions;
  log: Log;
  resources: Resources;
}

/** Adds and removes the scenario's third endpoint in the registry. */
interface Registry {
  add(): Promise<void>;
  remove(): Promise<void>;
  /** Makes sure the endpoint is not registered (after a run, whatever happened). */
  reset(): Promise<void>;
}

interface Planned {
  resolver: ConvergenceResolver;
  client: ConvergenceClient;
  title: string;
  target: string;
  channelOptions: Record<string, string | number>;
  env?: NodeJS.ProcessEnv;
  intervalMs: number | null;
  added: Backend;
  rounds: number;
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ms(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(0)} ms` : 'not converged';
}

async function runOne(
  ctx: ConvergenceContext,
  planned: Planned,
  registry: Registry,
): Promise<ConvergenceReport> {
  const { options } = ctx;
  const timing = convergenceTiming(planned.resolver, options.quick);
  const schedule = convergenceSchedule(timing, planned.rounds);
  const name = convergenceScenarioName(planned.resolver);
  const spec: LoadSpec = {
    scenario: `${name}:${planned.client}`,
    target: planned.target,
    channelOptions: planned.channelOptions,
    channels: 1,
    mode: 'closed',
    concurrency: CONVERGENCE_CONCURRENCY,
    rate: options.rate,
    count: null,
    durationMs: schedule.durationMs,
    warmupMs: options.warmupMs,
    deadlineMs: CONVERGENCE_DEADLINE_MS,
    readyTimeoutMs: READY_TIMEOUT_MS,
    trace: true,
  };
  const abort = new AbortController();
  /** Change times, epoch ms; the driver fills them in as it goes. */
  const epochs: Omit<ConvergenceEvent, 'phaseEndMs'>[] = [];
  let driver: Promise<unknown> | undefined;
  const drive = async (windowEpochMs: number): Promise<void> => {
    const until = (dueMs: number) =>
      sleep(Math.max(0, windowEpochMs + dueMs - epochNow()), undefined, { signal: abort.signal });
    for (const step of schedule.steps) {
      await until(step.addAtMs);
      const addStartMs = epochNow();
      await registry.add();
      const addDoneMs = epochNow();
      await until(step.removeAtMs);
      const removeStartMs = epochNow();
      await registry.remove();
      epochs.push({
        round: step.round,
        addStartMs,
        addDoneMs,
        removeStartMs,
        removeDoneMs: epochNow(),
      });
    }
  };
  let result;
  try {
    result = await runLoadInWorker(spec, {
      execArgv: [],
      ...(planned.env ? { env: planned.env } : {}),
      timeoutMs:
        options.warmupMs +
        READY_TIMEOUT_MS +
        schedule.durationMs +
        CONVERGENCE_DEADLINE_MS +
        60_000,
      onWindow: (phase, atEpochMs) => {
        if (phase !== 'start' || driver !== undefined) return;
        // Settles with the driver's error, or null; never rejects (it may settle before awaited).
        driver = drive(atEpochMs ?? epochNow()).then(
          () => null,
          (error: unknown) => error,
        );
      },
    });
  } finally {
    abort.abort();
    await driver;
    await registry.reset();
  }
  // Aborted: the run ended while a round was still due (it is left out); anything else failed.
  const driverError = await driver;
  const aborted = driverError instanceof Error && driverError.name === 'AbortError';
  if (driverError !== null && driverError !== undefined && !aborted) {
    throw new Error(
      `${spec.scenario}: changing the registry failed: ${describeError(driverError)}`,
    );
  }
  if (result.trace === undefined || result.windowStartEpochMs === undefined) {
    throw new Error(`${spec.scenario}: the worker sent no call trace`);
  }
  const start = result.windowStartEpochMs;
  const events: ConvergenceEvent[] = epochs.map((e, i) => ({
    round: e.round,
    addStartMs: e.addStartMs - start,
    addDoneMs: e.addDoneMs - start,
    removeStartMs: e.removeStartMs - start,
    removeDoneMs: e.removeDoneMs - start,
    phaseEndMs: i + 1 < epochs.length ? epochs[i + 1]!.addStartMs - start : result.totalMs,
  }));
  if (events.length < schedule.steps.length) {
    ctx.log(
      `[convergence] ${spec.scenario}: only ${events.length} of ${schedule.steps.length} rounds ` +
        'fitted in the run (registry writes slower than planned)',
    );
  }
  return summarizeConvergenceRun(result.trace, events, {
    name,
    resolver: planned.resolver,
    client: planned.client,
    title: planned.title,
    target: planned.target,
    intervalMs: planned.intervalMs,
    baseEndpoints: BASE_ENDPOINTS,
    addedEndpoint: planned.added.address,
    concurrency: CONVERGENCE_CONCURRENCY,
    timing,
    totalMs: result.totalMs,
  });
}

function runLine(r: ConvergenceReport): string {
  const head = `${r.name} × ${r.client}: ${r.rounds.length} round(s), ${r.calls} calls, failed ${r.failedCalls}`;
  if (!r.sawNewEndpoint) return `${head}; never called ${r.addedEndpoint} while it was registered`;
  return (
    `${head}; add → first call p50 ${ms(r.firstCall.p50Ms)} p99 ${ms(r.firstCall.p99Ms)} ` +
    `(${r.firstCall.converged}/${r.firstCall.rounds}); remove → last call p50 ` +
    `${ms(r.lastCall.p50Ms)} p99 ${ms(r.lastCall.p99Ms)} (${r.lastCall.converged}/${r.lastCall.rounds})`
  );
}

async function dnsGroup(
  ctx: ConvergenceContext,
  skipped: { name: string; reason: string }[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('dns');
  let dns: Bind9;
  try {
    dns = await startBind9();
  } catch (error) {
    skipped.push({ name, reason: `bind9: ${describeError(error)}` });
    return [];
  }
  const stopDns = resources.add('bind9', () => dns.dispose());
  try {
    const set = await startBackends({ count: BASE_ENDPOINTS + 1 });
    const stopBackends = resources.add('convergence-dns backends', () => set.stopAll());
    try {
      const base = set.backends.slice(0, BASE_ENDPOINTS);
      const added = set.backends[BASE_ENDPOINTS]!;
      await dns.update(...base.map((b) => dnsAdd(b.host)));
      log(
        `bind9 ${dns.pid ?? '?'} on ${dns.address}: ${base.map((b) => b.host).join(', ')}; ` +
          `${added.host} added and removed each round`,
      );
      const registry: Registry = {
        add: () => dns.update(dnsAdd(added.host)),
        remove: () => dns.update(dnsDelete(added.host)),
        reset: () => dns.update(dnsDelete(added.host)),
      };
      const ours = await runOne(
        ctx,
        {
          resolver: 'dns',
          client: 'grpc-lb',
          title: `grpc-lb dns+lb: (interval ${DNS_INTERVAL_MS} ms), grpc-lb.round_robin`,
          target: dnsLbTarget(dns.address, set.port, DNS_INTERVAL_MS),
          channelOptions: {},
          intervalMs: DNS_INTERVAL_MS,
          added,
          rounds: options.convergenceRounds,
        },
        registry,
      );
      log(`[convergence] ${runLine(ours)}`);
      const builtin = await runOne(
        ctx,
        {
          resolver: 'dns',
          client: 'grpc-js',
          title: "grpc-js's built-in dns: (c-ares, same server), round_robin",
          target: builtinDnsTarget(dns.address, set.port),
          channelOptions: {
            'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
          },
          env: { ...process.env, GRPC_NODE_USE_ALTERNATIVE_RESOLVER: 'true' },
          intervalMs: null,
          added,
          rounds: 1,
        },
        registry,
      );
      log(`[convergence] ${runLine(builtin)}`);
      return [ours, builtin];
    } finally {
      await stopBackends();
    }
  } finally {
    await stopDns();
  }
}

async function etcdGroup(
  ctx: ConvergenceContext,
  skipped: { name: string; reason: string }[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('etcd');
  let etcd: Etcd;
  try {
    etcd = await startEtcd();
  } catch (error) {
    skipped.push({ name, reason: `etcd: ${describeError(error)}` });
    return [];
  }
  const stopEtcd = resources.add('etcd', () => etcd.dispose());
  const registrations: EtcdRegistration[] = [];
  const deregisterAll = async () => {
    for (const r of registrations.splice(0)) await r.deregister().catch(() => undefined);
  };
  try {
    const set = await startBackends({ count: BASE_ENDPOINTS + 1 });
    const stopBackends = resources.add('convergence-etcd backends', () => set.stopAll());
    const stopRegistrations = resources.add('etcd registrations', deregisterAll);
    try {
      const register = (backend: Backend) =>
        registerEndpoint({
          endpoints: etcd.endpoint,
          service: ETCD_SERVICE,
          id: backend.name,
          host: backend.host,
          port: backend.port,
          ttlSeconds: LEASE_TTL_SECONDS,
        });
      for (const b of set.backends.slice(0, BASE_ENDPOINTS)) registrations.push(await register(b));
      const added = set.backends[BASE_ENDPOINTS]!;
      log(
        `etcd ${etcd.pid ?? '?'} on ${etcd.url}: ${registrations.map((r) => r.key).join(', ')}; ` +
          `${ETCD_SERVICE}/${added.name} registered and deregistered each round`,
      );
      let current: EtcdRegistration | undefined;
      const registry: Registry = {
        add: async () => {
          current = await register(added);
        },
        remove: async () => {
          const r = current;
          current = undefined;
          await r?.deregister();
        },
        reset: async () => {
          const r = current;
          current = undefined;
          await r?.deregister().catch(() => undefined);
        },
      };
      const report = await runOne(
        ctx,
        {
          resolver: 'etcd',
          client: 'grpc-lb',
          title: 'grpc-lb etcd: (watch), grpc-lb.round_robin',
          target: etcdTarget(etcd.endpoint),
          channelOptions: {},
          intervalMs: null,
          added,
          rounds: options.convergenceRounds,
        },
        registry,
      );
      log(`[convergence] ${runLine(report)}`);
      return [report];
    } finally {
      await stopRegistrations();
      await stopBackends();
    }
  } finally {
    await stopEtcd();
  }
}

export async function convergencePhase(
  ctx: ConvergenceContext,
  skipped: { name: string; reason: string }[],
): Promise<ConvergenceReport[]> {
  const { options, log } = ctx;
  if (options.convergenceRounds === 0) return [];
  const reports: ConvergenceReport[] = [];
  if (convergenceWanted(options.scenarios, 'dns')) {
    log(
      `convergence-dns: ${options.convergenceRounds} round(s) through dns+lb: (interval ` +
        `${DNS_INTERVAL_MS} ms), then 1 through grpc-js's built-in dns:`,
    );
    reports.push(...(await dnsGroup(ctx, skipped)));
  }
  if (convergenceWanted(options.scenarios, 'etcd')) {
    log(`convergence-etcd: ${options.convergenceRounds} round(s) through etcd:`);
    reports.push(...(await etcdGroup(ctx, skipped)));
  }
  return reports;
}
