/**
 * What a convergence run measured, from its per-call trace (load-generator.ts `CallTrace`) and the
 * times of the registry changes (ms into the measured window, on the worker's clock): per round,
 * change → first call answered by the added endpoint, and removal → last call answered by it;
 * over the rounds p50/p99/max of both, failed calls, and the target. Pure.
 *
 * Calls are placed in time by their COMPLETION (when the client saw the answer).
 */
import {
  type ConvergenceClient,
  type ConvergenceResolver,
  type ConvergenceTiming,
  CONSUL_TARGET_P99_MS,
  DNS_INTERVAL_MS,
  ETCD_TARGET_P99_MS,
  K8S_TARGET_P99_MS,
} from './convergence';
import type { CallTrace } from './load-generator';
import { statusName } from './results';
import { median, percentile, sortedCopy } from './stats';

/** When one round's changes were made, ms into the measured window. */
export interface ConvergenceEvent {
  round: number;
  /** The registry write adding the endpoint started / returned. */
  addStartMs: number;
  addDoneMs: number;
  /** The registry write removing it started / returned. */
  removeStartMs: number;
  removeDoneMs: number;
  /** End of the removal's phase: the next round's add, or the end of the run. */
  phaseEndMs: number;
}

export interface ConvergenceRound {
  round: number;
  /** From the start of the add to the first call the new endpoint answered; null: none before its removal. */
  firstCallMs: number | null;
  /**
   * From the start of the removal to the last call the removed endpoint answered (0: none after
   * it); null: it still answered calls in the last `quietMs` of the phase (not converged).
   */
  lastCallMs: number | null;
  /** Calls the added endpoint answered while it was registered. */
  callsWhileRegistered: number;
  /**
   * How long the registry writes took (nsupdate; registerEndpoint / deregister; the slice PUT;
   * the agent's register / deregister PUT).
   */
  addWriteMs: number;
  removeWriteMs: number;
}

export function measureRound(
  trace: CallTrace,
  address: string,
  event: ConvergenceEvent,
  quietMs: number,
): ConvergenceRound {
  const index = trace.backends.indexOf(address);
  let first = Infinity;
  let last = -Infinity;
  let registered = 0;
  if (index >= 0) {
    for (let i = 0; i < trace.completedMs.length; i++) {
      if (trace.codes[i] !== 0 || trace.backendIndex[i] !== index) continue;
      const at = trace.completedMs[i]!;
      if (at >= event.addStartMs && at < event.removeStartMs) {
        registered++;
        if (at < first) first = at;
      } else if (at >= event.removeStartMs && at < event.phaseEndMs && at > last) {
        last = at;
      }
    }
  }
  const stillAnswering = last >= event.phaseEndMs - quietMs;
  return {
    round: event.round,
    firstCallMs: Number.isFinite(first) ? first - event.addStartMs : null,
    lastCallMs: stillAnswering ? null : Number.isFinite(last) ? last - event.removeStartMs : 0,
    callsWhileRegistered: registered,
    addWriteMs: event.addDoneMs - event.addStartMs,
    removeWriteMs: event.removeDoneMs - event.removeStartMs,
  };
}

/** p50/p99/max over rounds; a round that did not converge counts as infinitely late. */
export interface Spread {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Rounds that converged, of `rounds`. */
  converged: number;
  rounds: number;
}

export function spread(values: readonly (number | null)[]): Spread {
  const sorted = sortedCopy(values.map((v) => (v === null ? Infinity : v)));
  return {
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    converged: values.filter((v) => v !== null).length,
    rounds: values.length,
  };
}

export interface ConvergenceTarget {
  text: string;
  thresholdMs: number;
  met: boolean;
}

/**
 * DNS (ours): every round converged and p99 of both ≤ the configured interval. etcd: p99 of both
 * ≤ 250 ms; Kubernetes (a watch) and Consul (blocking queries) are read against the same bound. The built-in resolver
 * has no target (it is the comparison).
 */
export function convergenceTarget(
  resolver: ConvergenceResolver,
  client: ConvergenceClient,
  intervalMs: number | null,
  first: Spread,
  last: Spread,
): ConvergenceTarget | null {
  if (client !== 'grpc-lb') return null;
  const thresholdMs =
    resolver === 'dns'
      ? (intervalMs ?? DNS_INTERVAL_MS)
      : resolver === 'k8s'
        ? K8S_TARGET_P99_MS
        : resolver === 'consul'
          ? CONSUL_TARGET_P99_MS
          : ETCD_TARGET_P99_MS;
  const text =
    resolver === 'dns'
      ? `DNS: a new record's first call and a removed record's last call ≤ the configured interval (${thresholdMs} ms), p99`
      : resolver === 'k8s'
        ? `Kubernetes: EndpointSlice add → first call and remove → last call p99 ≤ ${thresholdMs} ms (etcd's target)`
        : resolver === 'consul'
          ? `Consul: register → first call and deregister → last call p99 ≤ ${thresholdMs} ms (etcd's target)`
          : `etcd: put → first call and delete → last call p99 ≤ ${thresholdMs} ms`;
  const met =
    first.rounds > 0 &&
    first.converged === first.rounds &&
    last.converged === last.rounds &&
    first.p99Ms <= thresholdMs &&
    last.p99Ms <= thresholdMs;
  return { text, thresholdMs, met };
}

export interface ConvergenceReport {
  /** `convergence-dns`, `convergence-etcd`, `convergence-k8s`, `convergence-consul`. */
  name: string;
  resolver: ConvergenceResolver;
  client: ConvergenceClient;
  title: string;
  /** The client's target. */
  target: string;
  /** DNS: the configured re-resolution interval; null for the watches (etcd, Kubernetes, Consul) and the built-in resolver. */
  intervalMs: number | null;
  baseEndpoints: number;
  /** The endpoint added and removed each round. */
  addedEndpoint: string;
  concurrency: number;
  timing: ConvergenceTiming;
  rounds: ConvergenceRound[];
  calls: number;
  rps: number;
  failedCalls: number;
  failedByStatus: Record<string, number>;
  firstCall: Spread;
  lastCall: Spread;
  /** Whether the added endpoint answered any call while it was registered (in any round). */
  sawNewEndpoint: boolean;
  /** Median duration of the registry writes, ms. */
  addWriteMs: number;
  removeWriteMs: number;
  /** The target this run is read against (ours only), met or not. */
  goal: ConvergenceTarget | null;
}

export interface ConvergenceRunInfo {
  name: string;
  resolver: ConvergenceResolver;
  client: ConvergenceClient;
  title: string;
  target: string;
  intervalMs: number | null;
  baseEndpoints: number;
  addedEndpoint: string;
  concurrency: number;
  timing: ConvergenceTiming;
  /** Measured window, ms (for the calls per second). */
  totalMs: number;
}

export function summarizeConvergenceRun(
  trace: CallTrace,
  events: readonly ConvergenceEvent[],
  info: ConvergenceRunInfo,
): ConvergenceReport {
  const rounds = events.map((e) => measureRound(trace, info.addedEndpoint, e, info.timing.quietMs));
  const failedByCode: Record<number, number> = {};
  let failed = 0;
  for (const code of trace.codes) {
    if (code === 0) continue;
    failed++;
    failedByCode[code] = (failedByCode[code] ?? 0) + 1;
  }
  const failedByStatus: Record<string, number> = {};
  for (const [code, count] of Object.entries(failedByCode)) {
    failedByStatus[statusName(code)] = count;
  }
  const firstCall = spread(rounds.map((r) => r.firstCallMs));
  const lastCall = spread(rounds.map((r) => r.lastCallMs));
  const calls = trace.completedMs.length;
  return {
    name: info.name,
    resolver: info.resolver,
    client: info.client,
    title: info.title,
    target: info.target,
    intervalMs: info.intervalMs,
    baseEndpoints: info.baseEndpoints,
    addedEndpoint: info.addedEndpoint,
    concurrency: info.concurrency,
    timing: info.timing,
    rounds,
    calls,
    rps: info.totalMs > 0 ? (calls * 1000) / info.totalMs : NaN,
    failedCalls: failed,
    failedByStatus,
    firstCall,
    lastCall,
    sawNewEndpoint: rounds.some((r) => r.callsWhileRegistered > 0),
    addWriteMs: median(rounds.map((r) => r.addWriteMs)),
    removeWriteMs: median(rounds.map((r) => r.removeWriteMs)),
    goal: convergenceTarget(info.resolver, info.client, info.intervalMs, firstCall, lastCall),
  };
}
