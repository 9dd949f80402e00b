/**
 * The startup-skew group: where a new channel sends the calls it is given before any of its
 * endpoints is READY. Such calls wait in the channel; when the first endpoint connects, the policy
 * publishes a picker with that one endpoint and every waiting call is picked at once, so the whole
 * first burst can land on whichever backend connected first. After a full restart every client
 * starts this way at the same moment.
 *
 * Each backend set is run twice: with the connections completing as they do on loopback (all
 * within the same moment), and staggered, the i-th backend's a few ms after the one before (as
 * at different network distances).
 *
 * Pure: the clients and cases, the selection by `--scenarios`, the per-round summary, the
 * aggregate over rounds and its one-sentence reading; startup-skew-run.ts runs it.
 */
import { roundRobin, serviceConfig } from '@grpc-lb/core';
import { statusName } from './results';
import { type BackendInfo, NAMES, type ScenarioDef, mainScenarios } from './scenarios';

export const STARTUP_SKEW = 'startup-skew';

/** Calls sent at once on each new channel. */
export const STARTUP_CALLS = 100;

/** The small backend set: the first this many backends of the evenness set. */
export const STARTUP_SMALL_SET = 3;

/** grpc-lb's round robin with `startupGraceMs` set: the first calls wait for the other endpoints. */
export const STARTUP_GRACE_CLIENT = `${NAMES.ours}+grace`;

/**
 * The grace of STARTUP_GRACE_CLIENT, ms: well above the 180 ms by which the last of 10 backends
 * connecting STARTUP_STAGGER_MS apart follows the first, so that it ends only if something is wrong.
 */
export const STARTUP_GRACE_MS = 500;

/** The clients compared, in the order of odd rounds (even rounds run them in reverse). */
export const STARTUP_CLIENTS = [NAMES.ours, STARTUP_GRACE_CLIENT, NAMES.grpcJsRoundRobin] as const;

/** Whether `--scenarios` (null: all) selects the group. */
export function startupSkewWanted(scenarios: readonly string[] | null): boolean {
  return scenarios === null || scenarios.includes(STARTUP_SKEW);
}

/**
 * The staggered case: the i-th backend of a set (0-based, in the target's order) completes its
 * connections i × this many ms after the first (through a DelayedForwarder). Well above the few
 * ms by which scheduling on a busy machine shifts a connection, so that the backends connect in
 * the target's order, one at a time.
 */
export const STARTUP_STAGGER_MS = 20;

export interface StartupCase {
  backends: BackendInfo[];
  /** 0: the connections complete as they do on loopback, together; else the stagger step, ms. */
  staggerMs: number;
}

/**
 * The backend sets — the whole evenness set, and its first STARTUP_SMALL_SET backends when that
 * is smaller (a second set is only worth running when it differs) — each with the connections
 * completing together and STARTUP_STAGGER_MS apart.
 */
export function startupCases(backends: readonly BackendInfo[]): StartupCase[] {
  const sets = [[...backends]];
  if (backends.length > STARTUP_SMALL_SET) sets.push(backends.slice(0, STARTUP_SMALL_SET));
  return sets.flatMap((set) => [
    { backends: set, staggerMs: 0 },
    { backends: set, staggerMs: STARTUP_STAGGER_MS },
  ]);
}

/** "together", or "20 ms apart". */
export function connectionsText(staggerMs: number): string {
  return staggerMs === 0 ? 'together' : `${staggerMs} ms apart`;
}

/**
 * grpc-lb's round robin (`static:` target) and grpc-js's round_robin (`ipv4:` target) over
 * `backends` — the very clients of the main scenarios of the same names — and between them
 * grpc-lb's round robin with `startupGraceMs` STARTUP_GRACE_MS (same target, the policy given by
 * the channel's service config).
 */
export function startupClients(backends: readonly BackendInfo[]): ScenarioDef[] {
  const all = mainScenarios({
    backends,
    nginxPort: null,
    haproxyH2Port: null,
    haproxyTcpPort: null,
  });
  const find = (name: string): ScenarioDef => {
    const def = all.find((s) => s.name === name);
    if (!def) throw new Error(`scenario ${name} is missing from mainScenarios()`);
    return def;
  };
  return STARTUP_CLIENTS.map((name) => {
    if (name !== STARTUP_GRACE_CLIENT) return find(name);
    const ours = find(NAMES.ours);
    return {
      ...ours,
      name,
      title: `grpc-lb.round_robin with startupGraceMs ${STARTUP_GRACE_MS} (static:/// target)`,
      channelOptions: {
        'grpc.service_config': JSON.stringify(
          serviceConfig(roundRobin({ startupGraceMs: STARTUP_GRACE_MS })),
        ),
      },
    };
  });
}

export interface StartupSkewRound {
  round: number;
  /** Calls sent at once on the new channel. */
  calls: number;
  /** Answered calls per backend address (every backend of the set, idle ones as 0). */
  perBackend: Record<string, number>;
  /** Calls that failed, by status name. */
  failedByStatus: Record<string, number>;
  failed: number;
  /** Each backend's share of the answered calls, largest first (one entry per backend). */
  shares: number[];
  /** The largest share; null when no call was answered. */
  largestShare: number | null;
  /** The backend with the largest share (the first in the set's order on a tie); null: none. */
  busiestBackend: string | null;
  /** Backends of the set that answered no call. */
  idleBackends: number;
  /** From the first send to the last answer, ms. */
  totalMs: number;
}

export interface StartupRunInput {
  round: number;
  calls: number;
  /** The set's backend addresses, in the target's order. */
  backends: readonly string[];
  /** Answered calls per backend (`RunResult.perBackend`). */
  perBackend: Readonly<Record<string, number>>;
  /** Calls per numeric status code (`RunResult.statusCounts`). */
  statusCounts: Readonly<Record<string, number>>;
  totalMs: number;
}

export function summarizeStartupRound(input: StartupRunInput): StartupSkewRound {
  const perBackend: Record<string, number> = {};
  for (const address of input.backends) perBackend[address] = 0;
  for (const [address, count] of Object.entries(input.perBackend)) {
    perBackend[address] = (perBackend[address] ?? 0) + count;
  }
  const failedByStatus: Record<string, number> = {};
  let failed = 0;
  for (const [code, count] of Object.entries(input.statusCounts)) {
    if (code === '0' || count === 0) continue;
    failed += count;
    const name = statusName(code);
    failedByStatus[name] = (failedByStatus[name] ?? 0) + count;
  }
  const counts = Object.entries(perBackend);
  const answered = counts.reduce((sum, [, n]) => sum + n, 0);
  const shares = counts.map(([, n]) => (answered > 0 ? n / answered : 0)).sort((a, b) => b - a);
  let busiestBackend: string | null = null;
  let most = 0;
  for (const [address, n] of counts) {
    if (n > most) {
      most = n;
      busiestBackend = address;
    }
  }
  return {
    round: input.round,
    calls: input.calls,
    perBackend,
    failedByStatus,
    failed,
    shares,
    largestShare: answered > 0 ? shares[0]! : null,
    busiestBackend,
    idleBackends: counts.filter(([, n]) => n === 0).length,
    totalMs: input.totalMs,
  };
}

export interface StartupSkewReport {
  /** The client (scenario) name: `grpc-lb-round_robin` or `grpc-js-round_robin`. */
  client: string;
  title: string;
  backends: number;
  /** 0: connections completing together (loopback); else the i-th backend's come i × this ms later. */
  staggerMs: number;
  /** Calls per round. */
  calls: number;
  rounds: StartupSkewRound[];
  /**
   * The largest share the most even split of `calls` over `backends` would give:
   * ceil(calls / backends) / calls (10 % for 100 calls over 10 backends, 34 % over 3).
   */
  evenShare: number;
  /** Of the largest share of each round (rounds where nothing was answered left out). */
  largestShare: { mean: number | null; worst: number | null };
  /** Of the idle backends of each round. */
  idleBackends: { mean: number | null; worst: number | null };
  /**
   * Of each round's time from the first send to the last answer, ms (absent from runs stored
   * before it was reported).
   */
  elapsedMs?: { mean: number | null; worst: number | null };
  /** Summed over rounds. */
  failedCalls: number;
  failedByStatus: Record<string, number>;
  /** Distinct backends that had the largest share over the rounds (1: the same one every round). */
  busiestBackends: number;
}

export function evenLargestShare(calls: number, backends: number): number {
  if (calls <= 0 || backends <= 0) return NaN;
  return Math.ceil(calls / backends) / calls;
}

function meanOf(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

function maxOf(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.max(...values);
}

export function aggregateStartupSkew(
  meta: { client: string; title: string; backends: number; staggerMs: number; calls: number },
  rounds: readonly StartupSkewRound[],
): StartupSkewReport {
  const largest = rounds.flatMap((r) => (r.largestShare === null ? [] : [r.largestShare]));
  const idle = rounds.map((r) => r.idleBackends);
  const elapsed = rounds.map((r) => r.totalMs);
  const failedByStatus: Record<string, number> = {};
  for (const r of rounds) {
    for (const [name, n] of Object.entries(r.failedByStatus)) {
      failedByStatus[name] = (failedByStatus[name] ?? 0) + n;
    }
  }
  const busiest = new Set(rounds.flatMap((r) => (r.busiestBackend ? [r.busiestBackend] : [])));
  return {
    ...meta,
    rounds: [...rounds],
    evenShare: evenLargestShare(meta.calls, meta.backends),
    largestShare: { mean: meanOf(largest), worst: maxOf(largest) },
    idleBackends: { mean: meanOf(idle), worst: maxOf(idle) },
    elapsedMs: { mean: meanOf(elapsed), worst: maxOf(elapsed) },
    failedCalls: rounds.reduce((sum, r) => sum + r.failed, 0),
    failedByStatus,
    busiestBackends: busiest.size,
  };
}

const percent = (share: number | null): string =>
  share === null || !Number.isFinite(share) ? 'n/a' : `${(share * 100).toFixed(0)} %`;

/**
 * A round's shares, largest first, as whole percentages with a run of equal values written once
 * with its count: `[0.91, 0.09, 0, …]` over 10 backends is "91 9 0×8".
 */
export function formatSortedShares(shares: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < shares.length) {
    const text = (shares[i]! * 100).toFixed(0);
    let j = i + 1;
    while (j < shares.length && (shares[j]! * 100).toFixed(0) === text) j++;
    parts.push(j - i > 1 ? `${text}×${j - i}` : text);
    i = j;
  }
  return parts.join(' ');
}

/** Whether most of the burst went to one backend: a mean largest share of ≥ 50 % and ≥ 2× even. */
const isSkewed = (r: StartupSkewReport): boolean =>
  r.largestShare.mean !== null && r.largestShare.mean >= Math.max(0.5, 2 * r.evenShare);

const ms = (value: number | null): string => (value === null ? 'n/a' : `${value.toFixed(0)} ms`);

/**
 * One sentence on what the reports show: each client's largest share (mean, worst) and time from
 * the first send to the last answer per case against the even split's, for each client whether it
 * piled the burst onto one backend, and — when STARTUP_GRACE_CLIENT ran beside grpc-lb's plain
 * round robin — what the grace bought (evenness) and what it cost (a later start).
 */
export function startupSkewReading(reports: readonly StartupSkewReport[]): string {
  if (reports.length === 0) return 'Not measured.';
  const calls = reports[0]!.calls;
  const cases: { backends: number; staggerMs: number }[] = [];
  for (const r of reports) {
    if (!cases.some((c) => c.backends === r.backends && c.staggerMs === r.staggerMs)) {
      cases.push({ backends: r.backends, staggerMs: r.staggerMs });
    }
  }
  const perCase = cases.map(({ backends, staggerMs }) => {
    const of = reports.filter((r) => r.backends === backends && r.staggerMs === staggerMs);
    const clients = of
      .map(
        (r) =>
          `\`${r.client}\` ${percent(r.largestShare.mean)} ` +
          `(worst ${percent(r.largestShare.worst)}; ${ms(r.elapsedMs?.mean ?? null)})`,
      )
      .join(', ');
    return (
      `${backends} backends connecting ${connectionsText(staggerMs)}: ${clients}, ` +
      `even split ${percent(of[0]!.evenShare)}`
    );
  });
  const clients = [...new Set(reports.map((r) => r.client))];
  const verdicts = clients.map((client) => {
    const of = reports.filter((r) => r.client === client);
    const skewed = of.filter(isSkewed);
    if (skewed.length === of.length) {
      return `\`${client}\` sent most of the burst to one backend in every case`;
    }
    if (skewed.length === 0) return `\`${client}\` spread it in every case`;
    const staggers = [...new Set(skewed.map((r) => r.staggerMs))];
    const when = staggers.map((staggerMs) => {
      const sets = skewed.filter((r) => r.staggerMs === staggerMs).map((r) => r.backends);
      return `connecting ${connectionsText(staggerMs)} (${sets.join(' and ')} backends)`;
    });
    return `\`${client}\` sent most of it to one backend when ${when.join(' or ')}`;
  });
  return (
    `Largest share of the first ${calls} calls of a new channel (worst; time from the first ` +
    `send to the last answer), mean over rounds — ${perCase.join('; ')} — so ` +
    `${verdicts.join('; ')}${graceCost(reports)}.`
  );
}

/**
 * What `startupGraceMs` cost: the case where STARTUP_GRACE_CLIENT took longest over grpc-lb's
 * plain round robin (mean time of the calls), or '' when the two did not run side by side.
 */
function graceCost(reports: readonly StartupSkewReport[]): string {
  let worst: { extraMs: number; backends: number; staggerMs: number } | null = null;
  for (const grace of reports.filter((r) => r.client === STARTUP_GRACE_CLIENT)) {
    const plain = reports.find(
      (r) =>
        r.client === NAMES.ours && r.backends === grace.backends && r.staggerMs === grace.staggerMs,
    );
    const graceMs = grace.elapsedMs?.mean ?? null;
    const plainMs = plain?.elapsedMs?.mean ?? null;
    if (graceMs === null || plainMs === null) continue;
    const extraMs = graceMs - plainMs;
    if (worst === null || extraMs > worst.extraMs) {
      worst = { extraMs, backends: grace.backends, staggerMs: grace.staggerMs };
    }
  }
  if (worst === null) return '';
  const even = reports.filter((r) => r.client === STARTUP_GRACE_CLIENT).every((r) => !isSkewed(r));
  const took =
    worst.extraMs >= 0
      ? `${worst.extraMs.toFixed(0)} ms longer`
      : `${(-worst.extraMs).toFixed(0)} ms less`;
  return (
    `; the grace (\`startupGraceMs\` ${STARTUP_GRACE_MS}) ${even ? 'buys' : 'is meant to buy'} ` +
    'an even spread at the price of a later start — the first calls wait until every connection ' +
    `has settled or the grace has ended: the ${reports[0]!.calls} calls took ${took} (mean) than ` +
    `on \`${NAMES.ours}\` with ${worst.backends} backends connecting ` +
    `${connectionsText(worst.staggerMs)}, the most of any case`
  );
}
