/**
 * The comparisons the bench exists for, as ratios within one run. Throughput ratios are ours /
 * theirs (> 1: we are faster); p99 ratios are ours / theirs too (< 1: we are faster).
 *
 * Each ratio is the median of the per-round ratios: rounds are interleaved, so a round's scenarios
 * ran seconds apart under the same machine conditions, and pairing them cancels slow drifts (a
 * noisy neighbour, thermal state) that a ratio of two medians would keep.
 */
import { type ScenarioReport, roundShares } from './results';
import { NAMES } from './scenarios';
import { median } from './stats';

export interface Ratios {
  oursVsGrpcJsRoundRobin: number | null;
  oursVsDirect: number | null;
  oursVsNginx: number | null;
  oursVsHaproxyH2: number | null;
  oursP99VsGrpcJsRoundRobin: number | null;
  oursP99VsNginx: number | null;
  oursP99VsHaproxyH2: number | null;
  /** Open loop at the same offered rate: p99 ours / theirs. */
  openOursP99VsGrpcJsRoundRobin: number | null;
  openOursP99VsNginx: number | null;
  openOursP99VsHaproxyH2: number | null;
  /**
   * HAProxy mode tcp, one client channel: busiest / least busy backend. null when a backend got
   * no call at all (the ratio is infinite — the expected outcome); see the two fields below.
   */
  l4MaxMinShare: number | null;
  /** Fraction of the L4 calls the busiest backend took (1 = all pinned to one backend). */
  l4BusiestShare: number | null;
  l4IdleBackends: number | null;
  /** Evenness: our round robin over the evenness set (10 backends). */
  oursMaxMinShare: number | null;
  /** The same backends through HAProxy mode tcp from several client channels. */
  evennessL4MaxMinShare: number | null;
  evennessL4IdleBackends: number | null;
  /** Largest distance from the configured share, percentage points. */
  trafficSplitMaxErrorPp: number | null;
  weightedMaxErrorPp: number | null;
}

type Metric = 'rps' | 'p99Ms';

function finite(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

/** a.metric / b.metric for each round both ran, pairing rounds by number. */
export function roundRatios(
  a: ScenarioReport | undefined,
  b: ScenarioReport | undefined,
  metric: Metric,
): number[] {
  if (!a || !b) return [];
  const byRound = new Map(b.rounds.map((r) => [r.round, r]));
  const ratios: number[] = [];
  for (const round of a.rounds) {
    const other = byRound.get(round.round);
    if (other && other[metric] > 0 && Number.isFinite(round[metric])) {
      ratios.push(round[metric] / other[metric]);
    }
  }
  return ratios;
}

/** Median over rounds of a.metric / b.metric; null when no round pairs up. */
export function pairedRatio(
  a: ScenarioReport | undefined,
  b: ScenarioReport | undefined,
  metric: Metric,
): number | null {
  return finite(median(roundRatios(a, b, metric)));
}

/** The L4 case as one client sees it (per round; see roundShares). */
export function l4Ratios(
  l4: ScenarioReport | undefined,
): Pick<Ratios, 'l4MaxMinShare' | 'l4BusiestShare' | 'l4IdleBackends'> {
  if (!l4) return { l4MaxMinShare: null, l4BusiestShare: null, l4IdleBackends: null };
  const shares = roundShares(l4);
  return {
    l4MaxMinShare: shares.maxMinShare,
    l4BusiestShare: shares.busiestShare,
    l4IdleBackends: shares.idleBackends,
  };
}

export function computeRatios(
  closed: readonly ScenarioReport[],
  open: readonly ScenarioReport[],
  evenness: readonly ScenarioReport[],
): Ratios {
  const find = (list: readonly ScenarioReport[], name: string) => list.find((s) => s.name === name);
  const ours = find(closed, NAMES.ours);
  const openOurs = find(open, NAMES.ours);
  const l4 = find(closed, NAMES.haproxyTcp);
  const even = find(evenness, NAMES.evenness);
  const evenL4 = find(evenness, NAMES.evennessL4);
  return {
    oursVsGrpcJsRoundRobin: pairedRatio(ours, find(closed, NAMES.grpcJsRoundRobin), 'rps'),
    oursVsDirect: pairedRatio(ours, find(closed, NAMES.direct), 'rps'),
    oursVsNginx: pairedRatio(ours, find(closed, NAMES.nginx), 'rps'),
    oursVsHaproxyH2: pairedRatio(ours, find(closed, NAMES.haproxyH2), 'rps'),
    oursP99VsGrpcJsRoundRobin: pairedRatio(ours, find(closed, NAMES.grpcJsRoundRobin), 'p99Ms'),
    oursP99VsNginx: pairedRatio(ours, find(closed, NAMES.nginx), 'p99Ms'),
    oursP99VsHaproxyH2: pairedRatio(ours, find(closed, NAMES.haproxyH2), 'p99Ms'),
    openOursP99VsGrpcJsRoundRobin: pairedRatio(
      openOurs,
      find(open, NAMES.grpcJsRoundRobin),
      'p99Ms',
    ),
    openOursP99VsNginx: pairedRatio(openOurs, find(open, NAMES.nginx), 'p99Ms'),
    openOursP99VsHaproxyH2: pairedRatio(openOurs, find(open, NAMES.haproxyH2), 'p99Ms'),
    ...l4Ratios(l4),
    oursMaxMinShare: even ? even.shares.maxMinShare : null,
    evennessL4MaxMinShare: evenL4 ? evenL4.shares.maxMinShare : null,
    evennessL4IdleBackends: evenL4 ? evenL4.shares.idleBackends : null,
    trafficSplitMaxErrorPp: find(closed, NAMES.oursTrafficSplit)?.shareErrorPp ?? null,
    weightedMaxErrorPp: find(closed, NAMES.oursWeighted)?.shareErrorPp ?? null,
  };
}
