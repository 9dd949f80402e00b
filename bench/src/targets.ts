/**
 * The issue's targets, read off one run's numbers (never asserted by a test): met, missed, or not
 * measured, each with the numbers that explain it.
 */
import { DEFAULT_MAX_CONNECTING } from '@grpc-lb/core';
import type { ConvergenceReport } from './convergence-stats';
import { formatSpread } from './report';
import { roundRatios } from './ratios';
import { type ScenarioReport, otherLoad } from './results';
import { NAMES } from './scenarios';
import type { BenchRun, TargetCheck } from './bench-run';

const f = (value: number | null | undefined, digits = 2): string =>
  value === null || value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);

/** Total CPU per call (client + proxy + backends), µs. */
export function cpuPerCallUs(report: ScenarioReport): number {
  const m = report.median;
  return m.clientCpuUs + (m.proxyCpuUs ?? 0) + m.backendCpuUs;
}

function cpuBreakdown(report: ScenarioReport): string {
  const m = report.median;
  const proxy = m.proxyCpuUs === null ? '' : ` + proxy ${f(m.proxyCpuUs, 0)}`;
  return `${f(cpuPerCallUs(report), 0)} µs (client ${f(m.clientCpuUs, 0)}${proxy} + backends ${f(m.backendCpuUs, 0)})`;
}

function range(values: readonly number[]): string {
  if (values.length === 0) return 'n/a';
  return `${f(Math.min(...values), 3)}–${f(Math.max(...values), 3)}`;
}

function maxLag(report: ScenarioReport): number {
  return Math.max(...report.rounds.map((r) => r.maxSendLagMs));
}

function proxyChecks(run: BenchRun, name: string, label: string): TargetCheck[] {
  const find = (list: readonly ScenarioReport[], n: string) => list.find((s) => s.name === n);
  const ours = find(run.closed, NAMES.ours);
  const proxy = find(run.closed, name);
  const openOurs = find(run.open, NAMES.ours);
  const openProxy = find(run.open, name);
  const skipped = run.skipped.find((s) => s.name === name);
  const throughput = ours && proxy ? roundRatios(ours, proxy, 'rps') : [];
  const p99 = ours && proxy ? roundRatios(ours, proxy, 'p99Ms') : [];
  const key = name === NAMES.nginx ? 'Nginx' : 'HaproxyH2';
  const rpsRatio = run.ratios[`oursVs${key}`];
  const p99Ratio = run.ratios[`oursP99Vs${key}`];
  const openP99 = run.ratios[`openOursP99Vs${key}`];
  if (!ours || !proxy) {
    const reason = skipped ? `not measured: ${skipped.reason}` : 'not measured';
    return [
      {
        id: `throughput-vs-${name}`,
        target: `≥ 2× ${label} throughput`,
        measured: 'n/a',
        met: null,
        why: reason,
      },
      {
        id: `p99-vs-${name}`,
        target: `≤ 0.5× ${label} p99`,
        measured: 'n/a',
        met: null,
        why: reason,
      },
    ];
  }
  const cpuOurs = cpuPerCallUs(ours);
  const cpuProxy = cpuPerCallUs(proxy);
  const predicted = cpuOurs > 0 ? cpuProxy / cpuOurs : NaN;
  const cpuModel =
    `CPU per call: ours ${cpuBreakdown(ours)}, via ${label} ${cpuBreakdown(proxy)}. ` +
    `Every process shares the machine's ${run.machine.cores} cores, so closed-loop throughput is ` +
    `bounded by total CPU per call; that bound predicts ${f(predicted)}×. ` +
    `2× would need the proxy to cost as much CPU per call as the client and the backends together.`;
  const rpsMet = rpsRatio === null ? null : rpsRatio >= 2;
  const p99Met = p99Ratio === null ? null : p99Ratio <= 0.5;
  const openNote =
    openOurs && openProxy
      ? ` Open loop at ${run.settings.rate} calls/s (below saturation, so the hop itself shows): ` +
        `p99 ours ${f(openOurs.median.p99Ms, 3)} ms vs ${label} ${f(openProxy.median.p99Ms, 3)} ms ` +
        `(${f(openP99)}×); p50 ${f(openOurs.median.p50Ms, 3)} vs ${f(openProxy.median.p50Ms, 3)} ms. ` +
        `At that rate p99 is set by event-loop stalls of the client (GC, CPU contention; the ` +
        `longest send delay was ${f(maxLag(openOurs), 1)} vs ${f(maxLag(openProxy), 1)} ms), ` +
        `not by the extra hop.`
      : '';
  return [
    {
      id: `throughput-vs-${name}`,
      target: `≥ 2× ${label} throughput (same concurrency)`,
      measured: `${f(rpsRatio)}× (rounds ${range(throughput)}; ${f(ours.median.rps, 0)} vs ${f(proxy.median.rps, 0)} rps)`,
      met: rpsMet,
      why: (rpsMet ? '' : 'Missed. ') + cpuModel,
    },
    {
      id: `p99-vs-${name}`,
      target: `≤ 0.5× ${label} p99 (same concurrency)`,
      measured: `${f(p99Ratio)}× (rounds ${range(p99)}; ${f(ours.median.p99Ms, 3)} vs ${f(proxy.median.p99Ms, 3)} ms)`,
      met: p99Met,
      why:
        (p99Met ? '' : 'Missed. ') +
        `With a fixed number of calls in flight, latency is queueing time: mean latency = ` +
        `concurrency / throughput (Little's law), so the p99 ratio follows the throughput ratio ` +
        `and ≤ 0.5× needs about 2× the throughput.` +
        openNote,
    },
  ];
}

export function checkTargets(run: BenchRun): TargetCheck[] {
  const checks = throughputAndShareChecks(run);
  const load = otherLoad([...run.closed, ...run.open, ...run.evenness]);
  if (load && load.median > 0.1) {
    const note =
      ` Measured while other processes used ${f(load.median)} cores (median; max ${f(load.max)}) ` +
      `of the ${run.machine.cores}.`;
    for (const check of checks) {
      if (check.met !== null && /^(throughput|p99)-/.test(check.id)) check.why += note;
    }
  }
  return [...checks, ...microChecks(run), ...convergenceChecks(run)];
}

function throughputAndShareChecks(run: BenchRun): TargetCheck[] {
  const r = run.ratios;
  const find = (n: string) => run.closed.find((s) => s.name === n);
  const checks: TargetCheck[] = [];

  const ours = find(NAMES.ours);
  const grpcJs = find(NAMES.grpcJsRoundRobin);
  const vsGrpcJs = ours && grpcJs ? roundRatios(ours, grpcJs, 'rps') : [];
  checks.push({
    id: 'throughput-vs-grpc-js-round_robin',
    target: "≥ 0.98× grpc-js round_robin's throughput",
    measured:
      r.oursVsGrpcJsRoundRobin === null
        ? 'n/a'
        : `${f(r.oursVsGrpcJsRoundRobin, 3)}× (rounds ${range(vsGrpcJs)})`,
    met: r.oursVsGrpcJsRoundRobin === null ? null : r.oursVsGrpcJsRoundRobin >= 0.98,
    why:
      ours && grpcJs
        ? `Client CPU per call: ours ${f(ours.median.clientCpuUs, 0)} µs, grpc-js round_robin ` +
          `${f(grpcJs.median.clientCpuUs, 0)} µs. Both keep one connection per backend; the ` +
          `per-round ratios show the run-to-run noise.`
        : 'not measured',
  });

  checks.push(...proxyChecks(run, NAMES.nginx, 'nginx'));
  checks.push(...proxyChecks(run, NAMES.haproxyH2, 'HAProxy h2'));

  const even = run.evenness.find((s) => s.name === NAMES.evenness);
  checks.push({
    id: 'evenness',
    target: `max/min share ≤ 1.02 (${run.settings.evennessBackends} backends, ${run.settings.evennessCalls} calls)`,
    measured: even ? f(even.shares.maxMinShare, 4) : 'n/a',
    met: even ? even.shares.maxMinShare !== null && even.shares.maxMinShare <= 1.02 : null,
    why: even
      ? `${even.shares.calls} successful calls over ${even.shares.backends} backends; busiest took ` +
        `${f(even.shares.busiestShare * 100, 3)} %, ${even.errors} errors.`
      : 'not measured',
  });

  const l4 = find(NAMES.haproxyTcp);
  const evenL4 = run.evenness.find((s) => s.name === NAMES.evennessL4);
  const farWorse = (maxMin: number | null) => maxMin === null || maxMin >= 2;
  const l4Parts: string[] = [];
  if (l4) {
    l4Parts.push(
      `haproxy-tcp, 1 channel, per round: max/min ${r.l4MaxMinShare === null ? '∞' : f(r.l4MaxMinShare)}, ` +
        `busiest backend ${f((r.l4BusiestShare ?? NaN) * 100, 1)} % of calls, ` +
        `${f(r.l4IdleBackends, 0)} of ${l4.shares.backends} backends idle`,
    );
  }
  if (evenL4) {
    l4Parts.push(
      `evenness-l4, ${evenL4.channels} channels: max/min ${evenL4.shares.maxMinShare === null ? '∞' : f(evenL4.shares.maxMinShare)}, ` +
        `${evenL4.shares.idleBackends} of ${evenL4.shares.backends} backends idle`,
    );
  }
  checks.push({
    id: 'l4-imbalance',
    target: 'the L4 (per-connection) case far worse than 1.02',
    measured: l4Parts.length > 0 ? l4Parts.join('; ') : 'n/a',
    met:
      l4 || evenL4
        ? (!l4 || farWorse(r.l4MaxMinShare)) && (!evenL4 || farWorse(evenL4.shares.maxMinShare))
        : null,
    why:
      'An L4 balancer picks a backend once per TCP connection; a gRPC channel keeps one ' +
      'long-lived HTTP/2 connection, so every call of that channel goes to the same backend ' +
      '(max/min is infinite: a backend got no call). "Far worse" is read as max/min ≥ 2.',
  });

  const split = find(NAMES.oursTrafficSplit);
  checks.push({
    id: 'traffic-split-shares',
    target: 'traffic split 30/60/10: every share within ±0.5 pp',
    measured: split ? `${f(split.shareErrorPp, 3)} pp over ${split.shares.calls} calls` : 'n/a',
    met: split?.shareErrorPp === null || split === undefined ? null : split.shareErrorPp <= 0.5,
    why: split
      ? 'Largest distance of a backend’s share from its configured share.'
      : 'not measured',
  });

  return checks;
}

function microChecks(run: BenchRun): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const micro = run.micro;
  const picks10k = micro
    ? Object.entries(micro.pickNs).filter(
        ([key]) => key.startsWith('grpc-lb.') && key.endsWith('@10000'),
      )
    : [];
  const worstPick = picks10k.length > 0 ? Math.max(...picks10k.map(([, v]) => v)) : null;
  checks.push({
    id: 'pick-cost',
    target: 'a pick < 1 µs at 10,000 endpoints',
    measured:
      worstPick === null
        ? 'n/a'
        : picks10k.map(([key, v]) => `${key.replace('@10000', '')} ${f(v, 0)} ns`).join(', '),
    met: worstPick === null ? null : worstPick < 1000,
    why: micro
      ? 'In-process, fake subchannels (bench/src/micro.ts); the slowest of our policies decides.'
      : `not measured${run.microError ? `: ${run.microError}` : ''}`,
  });
  const applied = micro?.applied10kMs;
  checks.push({
    id: 'update-cost',
    target: applied
      ? 'a 10,000-endpoint update applied in ≤ 20 ms; a 1% change in ≤ 5 ms'
      : 'a 10,000-endpoint update applied in ≤ 20 ms',
    measured: !micro
      ? 'n/a'
      : applied
        ? `${f(applied.first)} ms first update applied; ${f(applied.diff)} ms with 1% changed; ` +
          `${f(micro.update10kMs)} ms until all 10,000 connections are READY; ` +
          `${f(micro.updateWeights10kMs)} ms weights only`
        : `${f(micro.update10kMs)} ms first update; ${f(micro.updateDiff10kMs)} ms with 1% changed; ` +
          `${f(micro.updateWeights10kMs)} ms weights only`,
    met: !micro
      ? null
      : applied
        ? applied.first <= 20 && applied.diff <= 5
        : micro.update10kMs <= 20,
    why: !micro
      ? `not measured${run.microError ? `: ${run.microError}` : ''}`
      : applied
        ? 'micro.ts (applied10kMs) times a resolver list of 10,000 endpoints through the ' +
          "resolver adapter's validation and comparison into updateAddressList, until the " +
          'balancer has published its state and picker: CONNECTING for a fresh ' +
          'grpc-lb.round_robin, READY over the kept endpoints for a 1% change. Connecting to all ' +
          `10,000 takes longer by design: connection pacing starts at most ${DEFAULT_MAX_CONNECTING} at a time ` +
          `(update10kMs, ${f(micro.update10kMs)} ms with stand-in connections; ` +
          `${f(micro.updateDiff10kMs)} ms until the 100 new endpoints of a 1% change are READY).`
        : 'micro.ts times a fresh grpc-lb.round_robin from updateAddressList with 10,000 new ' +
          'endpoints until all 10,000 stand-in connections are READY and the picker covers them; ' +
          'most of it is creating 10,000 pick_first leaves and subchannels inside ' +
          'updateAddressList (see the micro notes below; grpc-js round_robin takes longer). ' +
          'Updating an existing 10,000-endpoint set is within the target: the diff path (1% of ' +
          `10,000 changed) takes ${f(micro.updateDiff10kMs)} ms, a weights-only change ` +
          `${f(micro.updateWeights10kMs)} ms.`,
  });
  return checks;
}

/** Why a convergence target is met or missed, with the numbers behind it. */
export function convergenceWhy(r: ConvergenceReport): string {
  const rounds = `${r.rounds.length} round${r.rounds.length === 1 ? '' : 's'}`;
  const failed =
    r.failedCalls === 0 ? 'no failed call' : `${r.failedCalls} failed call(s) of ${r.calls}`;
  const writes = `the registry writes took ${f(r.addWriteMs, 0)} ms (add) and ${f(r.removeWriteMs, 0)} ms (remove), median, and are included`;
  if (r.resolver === 'dns') {
    return (
      `${rounds}, ${failed}; ${writes}. dns+lb: looks the name up again ${r.intervalMs ?? '?'} ms ` +
      'after each answer, so a change is seen at the next lookup: the bound is the interval plus ' +
      'the write, the lookup and the connection to the new backend; a change made just after a ' +
      'lookup waits almost a whole interval (the adds are jittered over the interval).'
    );
  }
  if (r.resolver === 'consul') {
    return (
      `${rounds}, ${failed}; ${writes} (one agent PUT each: /v1/agent/service/register, ` +
      '/v1/agent/service/deregister/<id>; no health check, so an instance passes at once). The ' +
      'resolver holds a blocking query on /v1/health/service/<name>?passing, which the agent ' +
      'answers as soon as the service’s index moves; the next query starts at least 100 ms (plus ' +
      'up to 50% jitter) after the previous one, then the connection to the new backend and the ' +
      'first call. Read against etcd’s target.'
    );
  }
  if (r.resolver === 'k8s') {
    return (
      `${rounds}, ${failed}; ${writes} (one PUT of the EndpointSlice each, as the admin user). ` +
      'The resolver watches the Service’s EndpointSlices at the API server (from the list’s ' +
      'resourceVersion), so the update reaches the channel as a MODIFIED event once the API ' +
      'server has written it to its etcd; the rest is the connection to the new backend and ' +
      'the first call. Read against etcd’s target: both resolvers are pushed the change.'
    );
  }
  return (
    `${rounds}, ${failed}; ${writes} (a fresh etcd connection, a lease grant and a put; ` +
    'deregister deletes the key first). The resolver watches the prefix, so the change reaches ' +
    'the channel as an event; the rest is the connection to the new backend and the first call.'
  );
}

/** One target per convergence scenario of ours that ran (none when the group did not run). */
function convergenceChecks(run: BenchRun): TargetCheck[] {
  return (run.convergence ?? []).flatMap((r) =>
    r.goal === null
      ? []
      : [
          {
            id: r.name,
            target: r.goal.text,
            measured: `add → first call ${formatSpread(r.firstCall)}; remove → last call ${formatSpread(r.lastCall)} (p50 / p99 / max)`,
            met: r.goal.met,
            why: (r.goal.met ? '' : 'Missed. ') + convergenceWhy(r),
          },
        ],
  );
}
