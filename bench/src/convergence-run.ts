/**
 * The convergence phase. For each resolver: its server (bind9, etcd, kube-apiserver or a Consul
 * agent, once per group), 3 harness backends of which 2 are registered, and one load-worker run (closed loop, CONVERGENCE_CONCURRENCY
 * calls in flight, every call traced) on a client through the resolver, during which the third
 * backend is added to the registry and removed again, round after round, on a fixed schedule
 * (convergence.ts). The change times are taken on the worker's clock (performance.timeOrigin +
 * performance.now() in both processes), and the trace says when the endpoint answered.
 *
 * DNS is also run once (one round) through grpc-js's built-in `dns:` resolver, in a worker started
 * with GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true (read by grpc-js when it loads) so that it asks the
 * same bind9 (examples/headless-dns does the same with use-c-ares.ts).
 *
 * Kubernetes: the real kube-apiserver of the tests (with its own etcd), a namespace, a Service
 * whose port `grpc` maps to the backends' port, and one EndpointSlice that the group rewrites with
 * PUTs, as the EndpointSlice controller would. The API refuses loopback addresses in slices, so
 * the backends listen on pod-like addresses (10.244.N.x). Those exist only inside a network
 * namespace made for the group (needs root): the group runs in a child process there
 * (convergence-k8s-worker.ts), with the API server, the backends and the load worker, and sends
 * its log lines and its report back over stdout.
 *
 * Consul: the tests' dev agent (test/testbin), the backends on 127.0.0.x registered as instances
 * of one service WITHOUT a health check (so an instance is passing as soon as it is registered:
 * what is measured is the resolver's blocking query, not a check interval); each add and removal
 * is one agent HTTP request (`registerService`: PUT /v1/agent/service/register; `deregister()`:
 * PUT /v1/agent/service/deregister/<id>). The worker is given the agent in CONSUL_HTTP_ADDR.
 *
 * Without its server (bind9, etcd, Consul, the API server or the pod addresses) a group is skipped
 * with the reason — under CI=true, failed (unavailable.ts).
 */
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerService } from '@grpc-lb/resolver-consul';
import { registerEndpoint } from '@grpc-lb/resolver-etcd';
import { type Backend, startBackends } from '@grpc-lb/test/harness';
import { type Bind9, startBind9 } from '@grpc-lb/test/support/bind9';
import { type Consul, startConsul } from '@grpc-lb/test/support/consul';
import { type Etcd, startEtcd } from '@grpc-lb/test/support/etcd';
import { type KubeApiserver, startKubeApiserver } from '@grpc-lb/test/support/kube-apiserver';
import { spawnInTestNetns } from '@grpc-lb/test/support/netns';
import { type PodAddresses, createPodAddresses } from '@grpc-lb/test/support/pod-addresses';
import type { BenchOptions } from './args';
import {
  BASE_ENDPOINTS,
  CONSUL_SERVICE,
  CONVERGENCE_CONCURRENCY,
  CONVERGENCE_DEADLINE_MS,
  type ConvergenceClient,
  type ConvergenceResolver,
  DNS_INTERVAL_MS,
  ETCD_SERVICE,
  K8S_NAMESPACE,
  K8S_SERVICE,
  K8S_SERVICES_PATH,
  K8S_SLICE,
  K8S_SLICES_PATH,
  builtinDnsTarget,
  consulInstanceId,
  consulTarget,
  convergenceSchedule,
  convergenceScenarioName,
  convergenceTiming,
  convergenceWanted,
  dnsAdd,
  dnsDelete,
  dnsLbTarget,
  etcdTarget,
  k8sNamespaceBody,
  k8sServiceBody,
  k8sSliceBody,
  k8sTarget,
  resourceVersionOf,
} from './convergence';
import {
  type ConvergenceEvent,
  type ConvergenceReport,
  summarizeConvergenceRun,
} from './convergence-stats';
import type { Resources } from './resources';
import { type Outcome, recordUnavailable } from './unavailable';
import type { LoadSpec } from './worker-protocol';
import { runLoadInWorker } from './worker-process';

type Log = (line: string) => void;

const READY_TIMEOUT_MS = 10_000;
const K8S_WORKER_MAIN = path.join(__dirname, 'convergence-k8s-worker.js');
/** The environment variable that hands the bench options to convergence-k8s-worker.ts. */
export const K8S_WORKER_OPTIONS_ENV = 'GRPC_LB_BENCH_OPTIONS';
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

/**
 * The registry of a registration helper (etcd's `registerEndpoint`, Consul's `registerService`):
 * `base` registered for the whole group, `added` registered and deregistered each round. The
 * returned `stop` deregisters whatever is still registered (also run by `resources` on Ctrl-C).
 */
async function registrationRegistry<R extends { deregister(): Promise<void> }>(
  resources: Resources,
  what: string,
  base: readonly Backend[],
  added: Backend,
  register: (backend: Backend) => Promise<R>,
): Promise<{ registry: Registry; registrations: R[]; stop: () => Promise<void> }> {
  const registrations: R[] = [];
  let current: R | undefined;
  const stop = resources.add(what, async () => {
    const all = [...registrations.splice(0), ...(current ? [current] : [])];
    current = undefined;
    for (const r of all) await r.deregister().catch(() => undefined);
  });
  try {
    for (const backend of base) registrations.push(await register(backend));
  } catch (error) {
    await stop();
    throw error;
  }
  const take = (): R | undefined => {
    const r = current;
    current = undefined;
    return r;
  };
  const registry: Registry = {
    add: async () => {
      current = await register(added);
    },
    remove: async () => {
      await take()?.deregister();
    },
    reset: async () => {
      await take()
        ?.deregister()
        .catch(() => undefined);
    },
  };
  return { registry, registrations, stop };
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
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('dns');
  let dns: Bind9;
  try {
    dns = await startBind9();
  } catch (error) {
    unavailable(ctx, name, `bind9: ${describeError(error)}`, skipped, failed);
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
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('etcd');
  let etcd: Etcd;
  try {
    etcd = await startEtcd();
  } catch (error) {
    unavailable(ctx, name, `etcd: ${describeError(error)}`, skipped, failed);
    return [];
  }
  const stopEtcd = resources.add('etcd', () => etcd.dispose());
  try {
    const set = await startBackends({ count: BASE_ENDPOINTS + 1 });
    const stopBackends = resources.add('convergence-etcd backends', () => set.stopAll());
    let stopRegistrations: (() => Promise<void>) | undefined;
    try {
      const added = set.backends[BASE_ENDPOINTS]!;
      const { registry, registrations, stop } = await registrationRegistry(
        resources,
        'etcd registrations',
        set.backends.slice(0, BASE_ENDPOINTS),
        added,
        (backend) =>
          registerEndpoint({
            endpoints: etcd.endpoint,
            service: ETCD_SERVICE,
            id: backend.name,
            host: backend.host,
            port: backend.port,
            ttlSeconds: LEASE_TTL_SECONDS,
          }),
      );
      stopRegistrations = stop;
      log(
        `etcd ${etcd.pid ?? '?'} on ${etcd.url}: ${registrations.map((r) => r.key).join(', ')}; ` +
          `${ETCD_SERVICE}/${added.name} registered and deregistered each round`,
      );
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
      await stopRegistrations?.();
      await stopBackends();
    }
  } finally {
    await stopEtcd();
  }
}

/**
 * A group whose servers cannot be had: skipped with the reason — or, under CI=true, failed (the
 * CLI then exits 1), as the ghz calibration does. The reason is cut to 2000 characters (a
 * server's log can be long).
 */
function unavailable(
  ctx: ConvergenceContext,
  name: string,
  reason: string,
  skipped: Outcome[],
  failed: Outcome[],
): void {
  recordUnavailable(ctx.log, name, reason.slice(0, 2000), skipped, failed);
}

/** What convergence-k8s-worker.ts prints on stdout, one JSON object a line. */
export type K8sWorkerLine =
  | { readonly log: string }
  | {
      readonly reports: ConvergenceReport[];
      readonly skipped: Outcome[];
      readonly failed: Outcome[];
    };

/** The Kubernetes group, run by convergence-k8s-worker.ts in a network namespace of its own. */
async function k8sGroup(
  ctx: ConvergenceContext,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const name = convergenceScenarioName('k8s');
  let started: ReturnType<typeof spawnInTestNetns>;
  try {
    started = spawnInTestNetns(process.execPath, [K8S_WORKER_MAIN], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, [K8S_WORKER_OPTIONS_ENV]: JSON.stringify(ctx.options) },
    });
  } catch (error) {
    unavailable(ctx, name, `network namespace: ${describeError(error)}`, skipped, failed);
    return [];
  }
  const { child, netns } = started;
  ctx.log(`convergence-k8s runs in network namespace ${netns.name} (pid ${child.pid ?? '?'})`);
  const exited = new Promise<string>((resolve) => {
    child.once('error', (error: Error) => resolve(error.message));
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) =>
      resolve(`exit ${code ?? signal ?? '?'}`),
    );
  });
  const stopWorker = ctx.resources.add('convergence-k8s worker', async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let result: Extract<K8sWorkerLine, { reports: unknown }> | undefined;
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    let parsed: K8sWorkerLine;
    try {
      parsed = JSON.parse(line) as K8sWorkerLine;
    } catch {
      ctx.log(`[convergence-k8s] ${line}`);
      continue;
    }
    if ('log' in parsed) ctx.log(parsed.log);
    else result = parsed;
  }
  const status = await exited;
  await stopWorker();
  if (!result) {
    failed.push({ name, reason: `the worker in ${netns.name} ended (${status}) without a report` });
    ctx.log(`FAILED ${name}: the worker ended (${status}) without a report`);
    return [];
  }
  skipped.push(...result.skipped);
  failed.push(...result.failed);
  return result.reports;
}

/** The Kubernetes group in this process, which must be in a test network namespace. */
export async function k8sGroupHere(
  ctx: ConvergenceContext,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('k8s');
  let pods: PodAddresses;
  try {
    pods = await createPodAddresses(BASE_ENDPOINTS + 1);
  } catch (error) {
    unavailable(ctx, name, `pod addresses: ${describeError(error)}`, skipped, failed);
    return [];
  }
  const removePods = resources.add('pod addresses', () => pods.remove());
  try {
    let kube: KubeApiserver;
    try {
      kube = await startKubeApiserver();
    } catch (error) {
      unavailable(ctx, name, `kube-apiserver: ${describeError(error)}`, skipped, failed);
      return [];
    }
    const stopKube = resources.add('kube-apiserver', () => kube.dispose());
    try {
      const set = await startBackends({ count: BASE_ENDPOINTS + 1, network: pods.network });
      const stopBackends = resources.add('convergence-k8s backends', () => set.stopAll());
      try {
        const api = async (method: string, path: string, body: unknown, ok: number) => {
          const result = await kube.request(method, path, body);
          if (result.status !== ok) {
            throw new Error(`${method} ${path}: ${result.status} ${result.body.slice(0, 500)}`);
          }
          return result.json;
        };
        const base = set.backends.slice(0, BASE_ENDPOINTS);
        const added = set.backends[BASE_ENDPOINTS]!;
        const hosts = (backends: readonly Backend[]) => backends.map((b) => b.host);
        await api('POST', '/api/v1/namespaces', k8sNamespaceBody(), 201);
        await api('POST', K8S_SERVICES_PATH, k8sServiceBody(set.port), 201);
        const created = await api(
          'POST',
          K8S_SLICES_PATH,
          k8sSliceBody(hosts(base), set.port),
          201,
        );
        // Each PUT carries the resourceVersion of the last write's answer, so a write is one request.
        let resourceVersion = resourceVersionOf(created);
        const slicePath = `${K8S_SLICES_PATH}/${K8S_SLICE}`;
        const putSlice = async (backends: readonly Backend[]) => {
          const put = () =>
            kube.request(
              'PUT',
              slicePath,
              k8sSliceBody(hosts(backends), set.port, resourceVersion),
            );
          let result = await put();
          if (result.status === 409) {
            // Changed since (no controller runs: only after a write of ours that timed out).
            resourceVersion = resourceVersionOf(await api('GET', slicePath, undefined, 200));
            result = await put();
          }
          if (result.status !== 200) {
            throw new Error(`PUT ${slicePath}: ${result.status} ${result.body.slice(0, 500)}`);
          }
          resourceVersion = resourceVersionOf(result.json);
        };
        log(
          `kube-apiserver ${kube.version} ${kube.pid ?? '?'} on ${kube.url}: EndpointSlice ` +
            `${K8S_NAMESPACE}/${K8S_SLICE} of Service ${K8S_SERVICE} with ${hosts(base).join(', ')}; ` +
            `${added.host} put in and out of it each round`,
        );
        const registry: Registry = {
          add: () => putSlice([...base, added]),
          remove: () => putSlice(base),
          reset: () => putSlice(base).catch(() => undefined),
        };
        const report = await runOne(
          ctx,
          {
            resolver: 'k8s',
            client: 'grpc-lb',
            title: 'grpc-lb k8s: (EndpointSlice watch), grpc-lb.round_robin',
            target: k8sTarget(),
            channelOptions: {},
            env: { ...process.env, KUBECONFIG: kube.adminKubeconfig },
            intervalMs: null,
            added,
            rounds: options.convergenceRounds,
          },
          registry,
        );
        log(`[convergence] ${runLine(report)}`);
        return [report];
      } finally {
        await stopBackends();
      }
    } finally {
      await stopKube();
    }
  } finally {
    await removePods();
  }
}

async function consulGroup(
  ctx: ConvergenceContext,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const { log, resources, options } = ctx;
  const name = convergenceScenarioName('consul');
  let consul: Consul;
  try {
    consul = await startConsul();
  } catch (error) {
    unavailable(ctx, name, `consul: ${describeError(error)}`, skipped, failed);
    return [];
  }
  const stopConsul = resources.add('consul', () => consul.dispose());
  try {
    const set = await startBackends({ count: BASE_ENDPOINTS + 1 });
    const stopBackends = resources.add('convergence-consul backends', () => set.stopAll());
    let stopRegistrations: (() => Promise<void>) | undefined;
    try {
      const added = set.backends[BASE_ENDPOINTS]!;
      // No `check`: the instance passes as soon as the agent has it (one PUT each way).
      const { registry, registrations, stop } = await registrationRegistry(
        resources,
        'consul registrations',
        set.backends.slice(0, BASE_ENDPOINTS),
        added,
        (backend) =>
          registerService({
            address: consul.address,
            name: CONSUL_SERVICE,
            id: consulInstanceId(backend.host, backend.port),
            host: backend.host,
            port: backend.port,
          }),
      );
      stopRegistrations = stop;
      log(
        `consul ${consul.version} ${consul.pid ?? '?'} on ${consul.url}: service ` +
          `${CONSUL_SERVICE} with ${registrations.map((r) => r.address).join(', ')} (no health ` +
          `check); ${consulInstanceId(added.host, added.port)} registered and deregistered each round`,
      );
      const report = await runOne(
        ctx,
        {
          resolver: 'consul',
          client: 'grpc-lb',
          title: 'grpc-lb consul: (blocking queries, passing only), grpc-lb.round_robin',
          target: consulTarget(),
          channelOptions: {},
          env: { ...process.env, CONSUL_HTTP_ADDR: consul.address },
          intervalMs: null,
          added,
          rounds: options.convergenceRounds,
        },
        registry,
      );
      log(`[convergence] ${runLine(report)}`);
      return [report];
    } finally {
      await stopRegistrations?.();
      await stopBackends();
    }
  } finally {
    await stopConsul();
  }
}

export async function convergencePhase(
  ctx: ConvergenceContext,
  skipped: Outcome[],
  failed: Outcome[],
): Promise<ConvergenceReport[]> {
  const { options, log } = ctx;
  if (options.convergenceRounds === 0) return [];
  const reports: ConvergenceReport[] = [];
  if (convergenceWanted(options.scenarios, 'dns')) {
    log(
      `convergence-dns: ${options.convergenceRounds} round(s) through dns+lb: (interval ` +
        `${DNS_INTERVAL_MS} ms), then 1 through grpc-js's built-in dns:`,
    );
    reports.push(...(await dnsGroup(ctx, skipped, failed)));
  }
  if (convergenceWanted(options.scenarios, 'etcd')) {
    log(`convergence-etcd: ${options.convergenceRounds} round(s) through etcd:`);
    reports.push(...(await etcdGroup(ctx, skipped, failed)));
  }
  if (convergenceWanted(options.scenarios, 'k8s')) {
    log(`convergence-k8s: ${options.convergenceRounds} round(s) through k8s:`);
    reports.push(...(await k8sGroup(ctx, skipped, failed)));
  }
  if (convergenceWanted(options.scenarios, 'consul')) {
    log(`convergence-consul: ${options.convergenceRounds} round(s) through consul:`);
    reports.push(...(await consulGroup(ctx, skipped, failed)));
  }
  return reports;
}
