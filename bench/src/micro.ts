/**
 * In-process micro benchmarks of grpc-lb's balancers (issue 4, "pick cost and
 * update cost"): the real policies, registered into grpc-js with
 * `register({ grpc })` and driven through `experimental.ChildLoadBalancerHandler`
 * as a channel would drive them, over `FakeSubchannel`s instead of
 * connections. No sockets, no servers; numbers are for humans to read, as
 * ratios within one run.
 */
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import {
  DEFAULT_MAX_CONNECTING,
  METHOD_PICK_KEY,
  METRICS_OPTION,
  EndpointLists,
  type EndpointList,
  normalizeEndpoint,
  register,
  trafficSplit,
} from '@grpc-lb/core';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { benchConsistentHash, type ConsistentHashMicro } from './consistent-hash-micro';
import { FakeChannel, FakeSubchannel, type ConnectMode } from './fake-subchannel';

export interface MicroOptions {
  quick: boolean;
  log?: (line: string) => void;
}

export interface MicroResults {
  /**
   * ns per pick, median of several rounds, keyed "<policy>@<endpoints>" for
   * grpc-lb.round_robin, grpc-lb.weighted_round_robin, grpc-lb.traffic_split
   * and grpc-js's own round_robin, at 10, 1000 and 10000 endpoints.
   */
  pickNs: Record<string, number>;
  /** ms to apply a first 10,000-endpoint update to grpc-lb.round_robin (all new endpoints), median */
  update10kMs: number;
  /** ms to apply a 10,000-endpoint update where 1% of endpoints changed (the diff path), median */
  updateDiff10kMs: number;
  /**
   * ms from a resolver's list of 10,000 endpoints to the balancer's first state and picker over it:
   * the adapter's validation and comparison with the set delivered before, then updateAddressList
   * (which publishes before it returns); `first`: a fresh grpc-lb.round_robin, `diff`: a READY one
   * given a list with 1% replaced. Median. Absent in results stored before it existed.
   */
  applied10kMs?: { first: number; diff: number };
  /** ms to apply a weights-only change to 10,000 endpoints under grpc-lb.weighted_round_robin */
  updateWeights10kMs: number;
  /** retained heap bytes per endpoint in the balancer at 10,000 endpoints */
  bytesPerEndpoint: number;
  /**
   * ns per call of the balancer's share of one call (pick, onCallStarted, onCallEnded(OK)) under
   * grpc-lb.round_robin at 10 endpoints, with OpenTelemetry metrics on and off (the channel
   * option), median of interleaved rounds, in CPU time of the process. Absent in results stored
   * before it existed.
   */
  metricsCallNs?: { on: number; off: number };
  /** grpc-lb.consistent_hash: keys moved, load, pick cost at 10,000 endpoints (consistent-hash-micro.ts). */
  consistentHash?: ConsistentHashMicro;
  notes: string[];
}

const ROUND_ROBIN = 'grpc-lb.round_robin';
const WEIGHTED_ROUND_ROBIN = 'grpc-lb.weighted_round_robin';
const TRAFFIC_SPLIT = 'grpc-lb.traffic_split';
const GRPC_JS_ROUND_ROBIN = 'round_robin';
type Policy =
  | typeof ROUND_ROBIN
  | typeof WEIGHTED_ROUND_ROBIN
  | typeof TRAFFIC_SPLIT
  | typeof GRPC_JS_ROUND_ROBIN;
const POLICIES: readonly Policy[] = [
  ROUND_ROBIN,
  WEIGHTED_ROUND_ROBIN,
  TRAFFIC_SPLIT,
  GRPC_JS_ROUND_ROBIN,
];
const SIZES = [10, 1000, 10_000] as const;
const UPDATE_SIZE = 10_000;

const METHOD = '/grpclb.test.Greeter/SayHello';
const VERSIONS = ['v1', 'v2', 'v3'] as const;
const SPLIT = { v1: 30, v2: 60, v3: 10 } as const;
const PORT = 50051;
/** Replacement endpoints of the 1% diff get indexes from here up, so their addresses are new. */
const REPLACEMENT_BASE = 1 << 20;

const { ChildLoadBalancerHandler, PickResultType, parseLoadBalancingConfig, statusOrFromValue } =
  grpc.experimental;
const CS = grpc.connectivityState;

type LbConfigJson = Parameters<typeof parseLoadBalancingConfig>[0];

interface Plan {
  pickCount: number;
  pickRounds: number;
  firstUpdateRounds: number;
  /**
   * Runs of the first 10k update with connections going READY one by one for
   * the policies other than grpc-lb.round_robin (seconds each: picker rebuilt per READY).
   */
  slowComparisonRounds: number;
  diffRounds: number;
  weightRounds: number;
  memoryRounds: number;
}

const QUICK: Plan = {
  pickCount: 100_000,
  pickRounds: 5,
  firstUpdateRounds: 3,
  slowComparisonRounds: 0,
  diffRounds: 5,
  weightRounds: 5,
  memoryRounds: 1,
};

const FULL: Plan = {
  pickCount: 1_000_000,
  pickRounds: 7,
  firstUpdateRounds: 7,
  slowComparisonRounds: 1,
  diffRounds: 11,
  weightRounds: 11,
  memoryRounds: 3,
};

// ---------------------------------------------------------------------------------------------
// Endpoints and configs

/** What the checks need to know about the endpoint behind a subchannel address. */
interface EndpointFacts {
  readonly weight: number;
  readonly version: string;
}

interface EndpointSet {
  readonly endpoints: experimental.Endpoint[];
  readonly facts: ReadonlyMap<string, EndpointFacts>;
}

function hostOf(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
}

/**
 * Endpoints as a grpc-lb resolver pushes them: the grpc-js address plus our
 * normalized data (weight, `version` label) on the Endpoint object itself.
 */
function endpointSet(indexes: readonly number[], weightOf: (index: number) => number): EndpointSet {
  const endpoints: experimental.Endpoint[] = [];
  const facts = new Map<string, EndpointFacts>();
  for (const index of indexes) {
    const host = hostOf(index);
    const weight = weightOf(index);
    const version = VERSIONS[index % VERSIONS.length]!;
    const grpcLb = normalizeEndpoint({ host, port: PORT, weight, labels: { version } });
    const endpoint = { addresses: [{ host, port: PORT }], grpcLb };
    endpoints.push(endpoint);
    facts.set(grpcLb.key, { weight, version });
  }
  return { endpoints, facts };
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

/** Weights 1-10, different for neighbours, so weighted picks are not trivially uniform. */
const weightsA = (index: number): number => 1 + (index % 10);
/** Every endpoint's weight differs from `weightsA` (1+x never equals 10-x for an integer x). */
const weightsB = (index: number): number => 10 - (index % 10);

function configFor(policy: Policy): experimental.TypedLoadBalancingConfig {
  const json =
    policy === TRAFFIC_SPLIT
      ? trafficSplit()
          .subset('v1', { version: 'v1' })
          .subset('v2', { version: 'v2' })
          .subset('v3', { version: 'v3' })
          .route({ method: METHOD }, SPLIT)
          .defaultRoute({ v2: 100 })
          .build()
      : { [policy]: {} };
  return parseLoadBalancingConfig(json as LbConfigJson);
}

/** The list a resolver pushes for `indexes`, before the adapter validates it. */
function rawEndpoints(
  indexes: readonly number[],
  weightOf: (index: number) => number,
): { host: string; port: number; weight: number; labels: Record<string, string> }[] {
  return indexes.map((index) => ({
    host: hostOf(index),
    port: PORT,
    weight: weightOf(index),
    labels: { version: VERSIONS[index % VERSIONS.length]! },
  }));
}

/**
 * What the resolver adapter does with a list before the channel sees it, with the adapter's own
 * code (`EndpointLists`, one per resolver): validates each endpoint (or reuses the one read before
 * when it came again unchanged), drops repeats, skips the update if it is the set delivered before,
 * and hands the channel its own copy of the grpc-js endpoints.
 */
function adapt(
  lists: EndpointLists,
  raw: readonly unknown[],
  previous: EndpointList | undefined,
): { list: EndpointList; set: EndpointSet } {
  const list = lists.read(raw, (message) => {
    throw new Error(`the benchmark's list is not clean: ${message}`);
  });
  if (previous && lists.same(previous, list)) throw new Error('the lists are the same');
  return { list, set: { endpoints: list.endpoints.slice(), facts: new Map() } };
}

// ---------------------------------------------------------------------------------------------
// A balancer under test

/**
 * The process registers grpc-lb with OpenTelemetry metrics on (for `benchMetricsCalls`); every
 * other benchmark leaves its balancer out of them with this channel option, as before.
 */
const UNMEASURED = { [METRICS_OPTION]: false };

class Harness {
  readonly channel: FakeChannel;
  private readonly handler: experimental.ChildLoadBalancerHandler;

  constructor(
    mode: ConnectMode,
    private readonly options: Record<string, unknown> = UNMEASURED,
  ) {
    this.channel = new FakeChannel(grpc, mode);
    this.handler = new ChildLoadBalancerHandler(this.channel);
  }

  update(set: EndpointSet, config: experimental.TypedLoadBalancingConfig): void {
    const accepted = this.handler.updateAddressList(
      statusOrFromValue(set.endpoints),
      config,
      this.options,
      'micro benchmark',
    );
    if (!accepted) throw new Error(`${config.getLoadBalancerName()} rejected the update`);
  }

  /**
   * Lets the stand-in connections finish: pick_first starts them on
   * `process.nextTick` and they report READY on a microtask, all of which run
   * before an immediate.
   */
  async settle(): Promise<void> {
    // The stand-in connections go READY on microtasks; the balancer batches READY transitions
    // into one picker rebuild on the next setImmediate, and grpc-lb's connection pacing starts
    // at most 64 connections per turn: wait until two turns in a row changed nothing.
    const progress = (): number =>
      this.channel.createdSubchannels + this.channel.readySubchannels + this.channel.stateUpdates;
    let last = -1;
    for (let turn = 0; ; turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      await new Promise<void>((resolve) => setImmediate(resolve));
      const now = progress();
      if (now === last && this.channel.connecting === 0) return;
      if (turn > 100_000) throw new Error('the balancer never settled');
      last = now;
    }
  }

  readyPicker(): experimental.Picker {
    const { state, picker, errorMessage } = this.channel;
    if (state !== CS.READY || !picker) {
      throw new Error(`balancer is ${CS[state]}, not READY: ${errorMessage ?? 'no error message'}`);
    }
    return picker;
  }

  destroy(): void {
    this.handler.destroy();
    if (this.channel.refs !== 0) {
      throw new Error(`balancer destroyed with ${this.channel.refs} subchannel refs still held`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checks: a broken setup must fail, not be measured as fast

function pickArgs(): experimental.PickArgs {
  return { metadata: new grpc.Metadata(), extraPickInfo: { [METHOD_PICK_KEY]: METHOD } };
}

function pickedAddress(picker: experimental.Picker, args: experimental.PickArgs): string {
  const result = picker.pick(args);
  if (result.pickResultType !== PickResultType.COMPLETE || result.subchannel === null) {
    throw new Error(
      `pick was ${PickResultType[result.pickResultType]}, not COMPLETE: ${result.status?.details ?? ''}`,
    );
  }
  if (!(result.subchannel instanceof FakeSubchannel)) {
    throw new Error('pick returned a subchannel this benchmark did not create');
  }
  return result.subchannel.address;
}

function countPicks(picker: experimental.Picker, picks: number): Map<string, number> {
  const args = pickArgs();
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const address = pickedAddress(picker, args);
    counts.set(address, (counts.get(address) ?? 0) + 1);
  }
  return counts;
}

/** Every endpoint of `set` exactly once in `set.endpoints.length` picks. */
function checkRotation(label: string, picker: experimental.Picker, set: EndpointSet): void {
  const counts = countPicks(picker, set.endpoints.length);
  if (counts.size !== set.facts.size || [...counts.keys()].some((a) => !set.facts.has(a))) {
    throw new Error(
      `${label}: ${set.endpoints.length} picks reached ${counts.size} distinct endpoints of ${set.facts.size}`,
    );
  }
}

/** Over twice the total weight in picks, each endpoint gets twice its weight, ±2. */
function checkWeights(label: string, picker: experimental.Picker, set: EndpointSet): void {
  let total = 0;
  for (const { weight } of set.facts.values()) total += weight;
  const counts = countPicks(picker, 2 * total);
  for (const [address, { weight }] of set.facts) {
    const got = counts.get(address) ?? 0;
    if (Math.abs(got - 2 * weight) > 2) {
      throw new Error(`${label}: ${address} (weight ${weight}) got ${got} of ${2 * total} picks`);
    }
  }
}

/** Versions split 30/60/10 (±2 picks), and every endpoint is reached. */
function checkSplit(label: string, picker: experimental.Picker, set: EndpointSet): void {
  const picks = Math.max(1000, 10 * set.endpoints.length);
  const counts = countPicks(picker, picks);
  const byVersion = new Map<string, number>();
  for (const [address, count] of counts) {
    const version = set.facts.get(address)?.version ?? 'unknown';
    byVersion.set(version, (byVersion.get(version) ?? 0) + count);
  }
  for (const [version, percent] of Object.entries(SPLIT)) {
    const got = byVersion.get(version) ?? 0;
    if (Math.abs(got - (picks * percent) / 100) > 2) {
      throw new Error(`${label}: ${version} got ${got} of ${picks} picks, expected ${percent}%`);
    }
  }
  if (counts.size !== set.facts.size) {
    throw new Error(
      `${label}: ${picks} picks reached ${counts.size} of ${set.facts.size} endpoints`,
    );
  }
}

/**
 * A fresh balancer is READY over all of `set`: one subchannel made per
 * endpoint, all of them READY, and picks complete (the distribution is
 * `checkPicker`'s job).
 */
function checkAllReady(label: string, harness: Harness, set: EndpointSet): void {
  const { createdSubchannels, readySubchannels } = harness.channel;
  const count = set.endpoints.length;
  if (createdSubchannels !== count || readySubchannels < count) {
    throw new Error(
      `${label}: ${createdSubchannels} subchannels made and ${readySubchannels} READY for ${count} endpoints`,
    );
  }
  countPicks(harness.readyPicker(), 1000);
}

function checkPicker(
  label: string,
  policy: Policy,
  picker: experimental.Picker,
  set: EndpointSet,
): void {
  if (policy === WEIGHTED_ROUND_ROBIN) checkWeights(label, picker, set);
  else if (policy === TRAFFIC_SPLIT) checkSplit(label, picker, set);
  else checkRotation(label, picker, set);
}

// ---------------------------------------------------------------------------------------------
// Timing

function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Where every timed pick result is stored. A channel keeps each result (and
 * later calls its callbacks), so the result must escape here too: otherwise
 * V8 may optimize away the allocations a pick makes.
 */
const sink: { result: experimental.PickResult | undefined } = { result: undefined };

/**
 * ns per pick over `count` picks. Counting results that are not COMPLETE with
 * a subchannel fails a broken setup instead of timing it.
 */
function timePicks(
  picker: experimental.Picker,
  args: experimental.PickArgs,
  count: number,
): number {
  const COMPLETE = PickResultType.COMPLETE;
  let bad = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const result = picker.pick(args);
    if (result.pickResultType !== COMPLETE || result.subchannel === null) bad++;
    sink.result = result;
  }
  const elapsed = process.hrtime.bigint() - start;
  if (bad > 0) throw new Error(`${bad} of ${count} picks were not COMPLETE with a subchannel`);
  return Number(elapsed) / count;
}

/**
 * `timePicks` again, for the pick_first floor: a second copy so the call
 * site the policies are timed at sees only their four picker classes.
 */
function timeLeafPicks(
  picker: experimental.Picker,
  args: experimental.PickArgs,
  count: number,
): number {
  const COMPLETE = PickResultType.COMPLETE;
  let bad = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const result = picker.pick(args);
    if (result.pickResultType !== COMPLETE || result.subchannel === null) bad++;
    sink.result = result;
  }
  const elapsed = process.hrtime.bigint() - start;
  if (bad > 0) throw new Error(`${bad} of ${count} picks were not COMPLETE with a subchannel`);
  return Number(elapsed) / count;
}

/**
 * ns per call of what the balancer does for one call: the pick, then the
 * result's `onCallStarted` and `onCallEnded(OK)`, as the channel calls them.
 */
function timeCalls(
  picker: experimental.Picker,
  args: experimental.PickArgs,
  count: number,
): number {
  const COMPLETE = PickResultType.COMPLETE;
  const OK = grpc.status.OK;
  const trailers = new grpc.Metadata();
  let bad = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const result = picker.pick(args);
    if (result.pickResultType !== COMPLETE || result.subchannel === null) bad++;
    result.onCallStarted?.();
    result.onCallEnded?.(OK, 'OK', trailers);
  }
  const elapsed = process.hrtime.bigint() - start;
  if (bad > 0) throw new Error(`${bad} of ${count} picks were not COMPLETE with a subchannel`);
  return Number(elapsed) / count;
}

/**
 * `timeCalls` again, for metrics on and off: a copy of its own so that this call site sees only
 * the round robin picker (with and without metrics), not the other policies' classes. It counts
 * the process's CPU time, not the clock's: on a shared machine the other work that preempts this
 * process would otherwise count, and the number is compared with a client's CPU per call.
 */
function timeMeteredCalls(
  picker: experimental.Picker,
  args: experimental.PickArgs,
  count: number,
): number {
  const COMPLETE = PickResultType.COMPLETE;
  const OK = grpc.status.OK;
  const trailers = new grpc.Metadata();
  let bad = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const result = picker.pick(args);
    if (result.pickResultType !== COMPLETE || result.subchannel === null) bad++;
    result.onCallStarted?.();
    result.onCallEnded?.(OK, 'OK', trailers);
  }
  const used = process.cpuUsage(start);
  if (bad > 0) throw new Error(`${bad} of ${count} picks were not COMPLETE with a subchannel`);
  return ((used.user + used.system) * 1000) / count;
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

// ---------------------------------------------------------------------------------------------
// The benchmarks

interface PickSetup {
  readonly key: string;
  readonly harness: Harness;
  readonly picker: experimental.Picker;
  readonly samples: number[];
}

async function benchPicks(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<Record<string, number>> {
  const pickNs: Record<string, number> = {};
  const args = pickArgs();

  const leaf = new Harness('connected');
  leaf.update(endpointSet([0], weightsA), parseLoadBalancingConfig({ pick_first: {} }));
  const leafPicker = leaf.readyPicker();
  timeLeafPicks(leafPicker, args, plan.pickCount);
  const leafSamples: number[] = [];
  const callNs = new Map<string, number>();

  for (const size of SIZES) {
    const set = endpointSet(range(size), weightsA);
    const setups: PickSetup[] = [];
    for (const policy of POLICIES) {
      const key = `${policy}@${size}`;
      const harness = new Harness('connected');
      harness.update(set, configFor(policy));
      await harness.settle();
      const picker = harness.readyPicker();
      checkPicker(key, policy, picker, set);
      setups.push({ key, harness, picker, samples: [] });
    }
    for (const setup of setups) timePicks(setup.picker, args, plan.pickCount);
    // Interleaved rounds: drift (turbo, other processes) hits every policy alike.
    for (let round = 0; round < plan.pickRounds; round++) {
      for (const setup of setups) setup.samples.push(timePicks(setup.picker, args, plan.pickCount));
      leafSamples.push(timeLeafPicks(leafPicker, args, plan.pickCount));
    }
    if (size === 1000) {
      const samples = setups.map(() => [] as number[]);
      for (const setup of setups) timeCalls(setup.picker, args, plan.pickCount);
      for (let round = 0; round < plan.pickRounds; round++) {
        setups.forEach((setup, i) =>
          samples[i]!.push(timeCalls(setup.picker, args, plan.pickCount)),
        );
      }
      setups.forEach((setup, i) => callNs.set(setup.key, median(samples[i]!)));
    }
    for (const setup of setups) {
      if (setup.harness.channel.picker !== setup.picker) {
        throw new Error(`${setup.key}: the balancer published a new picker while being timed`);
      }
      pickNs[setup.key] = median(setup.samples);
      log(
        `pick ${setup.key}: ${fmt(pickNs[setup.key]!)} ns ` +
          `(median of ${plan.pickRounds} × ${plan.pickCount.toLocaleString('en')}; ` +
          `min ${fmt(Math.min(...setup.samples))}, max ${fmt(Math.max(...setup.samples))})`,
      );
      setup.harness.destroy();
    }
  }
  leaf.destroy();
  const floor = median(leafSamples);
  log(`pick pick_first@1 (floor): ${fmt(floor)} ns`);
  const calls = [...callNs].map(([key, ns]) => `${key} ${fmt(ns)} ns`).join(', ');
  log(`pick + onCallStarted + onCallEnded: ${calls}`);
  notes.push(
    `pickNs: ns per picker.pick({metadata, extraPickInfo: {'${METHOD_PICK_KEY}': '${METHOD}'}}) on the ` +
      `READY picker the balancer published through ChildLoadBalancerHandler, median of ${plan.pickRounds} ` +
      `rounds × ${plan.pickCount.toLocaleString('en')} picks, policies interleaved per round; every pick ` +
      `checked COMPLETE with a subchannel, and before timing the distribution was checked ` +
      `(round robin: every endpoint once per cycle; weighted: each endpoint 2×weight ±2 over 2×total ` +
      `weight; traffic_split: 30/60/10 ±2 picks and every endpoint reached). Weights 1-10, ` +
      `labels version=v1/v2/v3 by index, traffic_split = subsets v1/v2/v3, route ${METHOD} ` +
      `30/60/10, default route v2.`,
    `pick floor: a lone pick_first leaf's picker costs ${fmt(floor)} ns per pick in the same loop ` +
      `(it allocates the result object); every policy above ends in one such leaf pick.`,
    'pickNs are timed at one call site that sees all four policies\u2019 picker classes ' +
      '(polymorphic, as a process with several channels would be); a channel with one policy ' +
      'may be a few ns faster. Each result is stored outside the loop, as a channel keeps it, so ' +
      'V8 cannot optimize away the objects a pick allocates.',
    `per call, pick + the result's onCallStarted() + onCallEnded(OK) (grpc-lb's per-endpoint ` +
      `call counters and latency; grpc-js round_robin has no callbacks), at 1000 endpoints: ${calls}.`,
  );
  return pickNs;
}

interface UpdateTiming {
  readonly syncMs: number;
  readonly totalMs: number;
}

async function timeFirstUpdate(
  policy: Policy,
  mode: ConnectMode,
  set: EndpointSet,
): Promise<UpdateTiming> {
  const config = configFor(policy);
  const harness = new Harness(mode);
  const start = process.hrtime.bigint();
  harness.update(set, config);
  const syncMs = msSince(start);
  await harness.settle();
  const totalMs = msSince(start);
  checkAllReady(`first update ${policy}`, harness, set);
  harness.destroy();
  return { syncMs, totalMs };
}

async function benchFirstUpdate(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<number> {
  const set = endpointSet(range(UPDATE_SIZE), weightsA);
  const samples = new Map<string, UpdateTiming[]>();
  const run = async (policy: Policy, mode: ConnectMode, rounds: number): Promise<void> => {
    for (let round = 0; round < rounds; round++) {
      const key = `${policy}/${mode}`;
      const timing = await timeFirstUpdate(policy, mode, set);
      samples.set(key, [...(samples.get(key) ?? []), timing]);
    }
  };
  const summary = (policy: Policy, mode: ConnectMode): UpdateTiming | undefined => {
    const timings = samples.get(`${policy}/${mode}`);
    if (!timings) return undefined;
    return {
      syncMs: median(timings.map((t) => t.syncMs)),
      totalMs: median(timings.map((t) => t.totalMs)),
    };
  };
  for (let round = 0; round < plan.firstUpdateRounds; round++) {
    await run(ROUND_ROBIN, 'connects', 1);
    for (const policy of POLICIES) await run(policy, 'connected', 1);
  }
  for (const policy of POLICIES) {
    if (policy !== ROUND_ROBIN) await run(policy, 'connects', plan.slowComparisonRounds);
  }

  const ours = summary(ROUND_ROBIN, 'connects')!;
  log(
    `first update 10k, ${ROUND_ROBIN}: ${fmt(ours.totalMs)} ms until all READY ` +
      `(${fmt(ours.syncMs)} ms inside updateAddressList)`,
  );
  const oneByOne: string[] = [];
  const alreadyReady: string[] = [];
  for (const policy of POLICIES) {
    const connects = summary(policy, 'connects');
    if (connects) {
      oneByOne.push(
        `${policy} ${fmt(connects.totalMs)} ms (${fmt(connects.syncMs)} ms in the call)`,
      );
    }
    alreadyReady.push(`${policy} ${fmt(summary(policy, 'connected')!.totalMs)} ms`);
  }
  log(`first update 10k, connections going READY one by one: ${oneByOne.join('; ')}`);
  log(`first update 10k, subchannels already READY: ${alreadyReady.join('; ')}`);
  notes.push(
    `update10kMs: from calling updateAddressList with 10,000 new endpoints on a fresh ` +
      `${ROUND_ROBIN} until every stand-in connection is READY and the balancer has published the ` +
      `picker over all 10,000 (median of ${plan.firstUpdateRounds}). Includes creating 10,000 ` +
      `pick_first leaves and fake subchannels, and the balancer's reaction to each of the 10,000 ` +
      `READY transitions, which arrive one by one after the call returns (fake connections go ` +
      `READY on a microtask, as real handshakes finish after the update); grpc-lb batches the ` +
      `READY transitions of one event-loop turn into one picker rebuild, where grpc-js's ` +
      `round_robin rebuilds on each. grpc-lb's connection pacing starts at most ` +
      `${DEFAULT_MAX_CONNECTING} connections per turn, so the total spans at least ` +
      `${Math.ceil(UPDATE_SIZE / DEFAULT_MAX_CONNECTING)} turns of the event loop; of it, ` +
      `${fmt(ours.syncMs)} ms is inside updateAddressList (the 10,000 endpoints recorded, ` +
      `CONNECTING published; the first ${DEFAULT_MAX_CONNECTING} pick_first leaves are made on ` +
      `the next turn). ` +
      `Endpoint objects are built beforehand (applied10kMs includes the adapter's work).`,
    `first 10k update, connections going READY one by one` +
      (plan.slowComparisonRounds > 0
        ? ` (other policies: ${plan.slowComparisonRounds} run each): ${oneByOne.join('; ')}.`
        : ` (other policies are timed in full mode only): ${oneByOne.join('; ')}.`),
    `first 10k update with subchannels already READY when created (a subchannel pool hit: ` +
      `pick_first picks during the update, one picker build in all; median of ` +
      `${plan.firstUpdateRounds}): ${alreadyReady.join('; ')}.`,
  );
  return ours.totalMs;
}

async function benchDiffUpdate(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<number> {
  const indexes = range(UPDATE_SIZE);
  const setA = endpointSet(indexes, weightsA);
  const changed = indexes.map((i) => (i % 100 === 0 ? REPLACEMENT_BASE + i / 100 : i));
  const setB = endpointSet(changed, weightsA);
  const config = configFor(ROUND_ROBIN);
  // Built over already-READY subchannels (fast); the timed updates' new ones connect.
  const harness = new Harness('connected');
  harness.update(setA, config);
  await harness.settle();
  checkPicker('diff update base', ROUND_ROBIN, harness.readyPicker(), setA);
  harness.channel.mode = 'connects';
  const samples: number[] = [];
  for (let round = 0; round < plan.diffRounds; round++) {
    const set = round % 2 === 0 ? setB : setA;
    const created = harness.channel.createdSubchannels;
    const start = process.hrtime.bigint();
    harness.update(set, config);
    await harness.settle();
    samples.push(msSince(start));
    const newLeaves = harness.channel.createdSubchannels - created;
    if (newLeaves !== UPDATE_SIZE / 100) {
      throw new Error(
        `diff update created ${newLeaves} subchannels, expected ${UPDATE_SIZE / 100}`,
      );
    }
    checkPicker('diff update', ROUND_ROBIN, harness.readyPicker(), set);
  }
  harness.destroy();
  const result = median(samples);
  log(`diff update 10k (1% changed), ${ROUND_ROBIN}: ${fmt(result, 2)} ms`);
  notes.push(
    `updateDiff10kMs: a READY ${ROUND_ROBIN} over 10,000 endpoints gets a list in which 100 ` +
      `endpoints (1%) are replaced by new addresses: 9,900 leaves kept untouched, 100 destroyed, ` +
      `100 created and connected. Timed from updateAddressList until the 100 new connections are ` +
      `READY and the picker is republished (median of ${plan.diffRounds}, alternating between the ` +
      `two lists).`,
  );
  return result;
}

async function benchApplied(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<{ first: number; diff: number }> {
  const indexes = range(UPDATE_SIZE);
  const rawA = rawEndpoints(indexes, weightsA);
  const changed = indexes.map((i) => (i % 100 === 0 ? REPLACEMENT_BASE + i / 100 : i));
  const rawB = rawEndpoints(changed, weightsA);
  const config = configFor(ROUND_ROBIN);
  const first: number[] = [];
  const diff: number[] = [];
  // The READY balancer the 1% changes are applied to, alternating between the two lists.
  const base = new Harness('connected');
  // The base balancer's resolver: it has read and delivered list A.
  const lists = new EndpointLists();
  let delivered = adapt(lists, rawA, undefined);
  base.update(delivered.set, config);
  await base.settle();
  base.channel.mode = 'connects';
  for (let round = 0; round < plan.diffRounds; round++) {
    const fresh = new Harness('connects');
    let start = process.hrtime.bigint();
    // A new channel: a new resolver, which has read nothing before.
    fresh.update(adapt(new EndpointLists(), rawA, undefined).set, config);
    first.push(msSince(start));
    if (fresh.channel.stateUpdates === 0 || fresh.channel.state !== CS.CONNECTING) {
      throw new Error('a first update published no CONNECTING state');
    }
    await fresh.settle();
    fresh.destroy();

    const raw = round % 2 === 0 ? rawB : rawA;
    const updates = base.channel.stateUpdates;
    start = process.hrtime.bigint();
    const next = adapt(lists, raw, delivered.list);
    base.update(next.set, config);
    diff.push(msSince(start));
    delivered = next;
    if (base.channel.stateUpdates === updates || base.channel.state !== CS.READY) {
      throw new Error('a 1% change published no READY picker');
    }
    await base.settle();
  }
  base.destroy();
  const result = { first: median(first), diff: median(diff) };
  log(
    `applied 10k (resolver list -> first state and picker published), ${ROUND_ROBIN}: ` +
      `first ${fmt(result.first)} ms, 1% changed ${fmt(result.diff, 2)} ms`,
  );
  notes.push(
    `applied10kMs: from a resolver's list of 10,000 endpoints (plain objects, as a resolver pushes ` +
      `them) to the balancer's first state and picker over it: the resolver adapter's work, with ` +
      `its own code (EndpointLists: validating each endpoint or reusing the one read before when it ` +
      `came again unchanged, dropping repeats, comparing with the set delivered before, the ` +
      `grpc-js endpoints) and updateAddressList, which publishes before it returns. Nothing is ` +
      `kept by object identity: a resolver sending new objects for the same list costs the same. ` +
      `first: a fresh ${ROUND_ROBIN}, which publishes CONNECTING (calls queue); its connections ` +
      `start from the next turn on, ${DEFAULT_MAX_CONNECTING} at a time; ` +
      `diff: a READY balancer given the list with 100 endpoints replaced, which publishes READY ` +
      `over the 9,900 kept (the 100 removed are out) while the 100 new ones connect. Median of ` +
      `${plan.diffRounds} each. The connections themselves are update10kMs and updateDiff10kMs.`,
  );
  return result;
}

async function benchWeightUpdate(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<number> {
  const indexes = range(UPDATE_SIZE);
  const setA = endpointSet(indexes, weightsA);
  const setB = endpointSet(indexes, weightsB);
  const config = configFor(WEIGHTED_ROUND_ROBIN);
  const harness = new Harness('connected');
  harness.update(setA, config);
  await harness.settle();
  const samples: number[] = [];
  let last = setA;
  for (let round = 0; round < plan.weightRounds; round++) {
    last = round % 2 === 0 ? setB : setA;
    const created = harness.channel.createdSubchannels;
    const before = harness.channel.picker;
    const start = process.hrtime.bigint();
    harness.update(last, config);
    await harness.settle();
    samples.push(msSince(start));
    if (harness.channel.createdSubchannels !== created) {
      throw new Error('a weights-only update created subchannels (it must not reconnect)');
    }
    if (harness.channel.picker === before) {
      throw new Error('a weights-only update published no new picker');
    }
    harness.readyPicker();
  }
  checkPicker('weights update', WEIGHTED_ROUND_ROBIN, harness.readyPicker(), last);
  harness.destroy();
  const result = median(samples);
  log(`weights-only update 10k, ${WEIGHTED_ROUND_ROBIN}: ${fmt(result, 2)} ms`);
  notes.push(
    `updateWeights10kMs: a READY ${WEIGHTED_ROUND_ROBIN} over 10,000 endpoints gets the same ` +
      `addresses with every weight changed; timed from updateAddressList until the new picker ` +
      `(a fresh EDF schedule over 10,000) is published (synchronous; no subchannel is created), ` +
      `median of ${plan.weightRounds}. The resulting share per endpoint was checked.`,
  );
  return result;
}

async function measureBytes(policy: Policy, set: EndpointSet): Promise<number> {
  const gc = global.gc;
  const config = configFor(policy);
  // Subchannels already READY: the same retained state as connecting ones, built in O(n).
  const harness = new Harness('connected');
  // The stand-in connections belong to the channel, not the balancer: made before the baseline.
  harness.channel.prepare(set.facts.keys());
  gc?.();
  const before = process.memoryUsage().heapUsed;
  harness.update(set, config);
  await harness.settle();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  checkAllReady(`memory ${policy}`, harness, set);
  harness.destroy();
  return (after - before) / set.endpoints.length;
}

async function benchMemory(
  plan: Plan,
  log: (line: string) => void,
  notes: string[],
): Promise<number> {
  const set = endpointSet(range(UPDATE_SIZE), weightsA);
  const samples = new Map<Policy, number[]>();
  for (let round = 0; round < plan.memoryRounds; round++) {
    for (const policy of POLICIES) {
      samples.set(policy, [...(samples.get(policy) ?? []), await measureBytes(policy, set)]);
    }
  }
  const bytes = new Map(POLICIES.map((p) => [p, median(samples.get(p)!)] as const));
  const line = POLICIES.map((p) => `${p} ${fmt(bytes.get(p)!, 0)}`).join(', ');
  log(`retained bytes per endpoint at 10k: ${line}`);
  const how =
    typeof global.gc === 'function'
      ? 'with a full GC (global.gc) before each reading'
      : 'WITHOUT a forced GC (run node with --expose-gc for a reliable number): ' +
        'the difference includes garbage not yet collected, or misses some if a GC ran';
  notes.push(
    `bytesPerEndpoint: (heapUsed after − before) / 10,000 around building a READY ` +
      `${ROUND_ROBIN} over 10,000 endpoints, ${how}; median of ${plan.memoryRounds}. Counts the ` +
      `policy's per-endpoint state, the pick_first leaves and their pickers; not the endpoint ` +
      `objects (the resolver's) nor the fake subchannels (the channel's, made beforehand). All ` +
      `policies: ${line}.`,
  );
  return bytes.get(ROUND_ROBIN)!;
}

/** The sum of `grpc.client.attempt.started` over every attribute set, as the reader collects it. */
async function attemptsStarted(reader: PeriodicExportingMetricReader): Promise<number> {
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0) throw new Error(`metrics: collection failed: ${String(errors[0])}`);
  let sum = 0;
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== 'grpc.client.attempt.started') continue;
      for (const point of metric.dataPoints) {
        if (typeof point.value === 'number') sum += point.value;
      }
    }
  }
  return sum;
}

/**
 * The per-call cost of metrics: two grpc-lb.round_robin balancers over the same 10 endpoints, one
 * measured (the SDK MeterProvider the process registered) and one left out by the channel option,
 * timed in interleaved rounds (on first in odd rounds, off first in even ones).
 */
async function benchMetricsCalls(
  plan: Plan,
  reader: PeriodicExportingMetricReader,
  log: (line: string) => void,
  notes: string[],
): Promise<{ on: number; off: number }> {
  const set = endpointSet(range(10), weightsA);
  const args = pickArgs();
  const setups = [
    { on: true, harness: new Harness('connected', {}), samples: [] as number[] },
    { on: false, harness: new Harness('connected'), samples: [] as number[] },
  ];
  const pickers: experimental.Picker[] = [];
  for (const setup of setups) {
    setup.harness.update(set, configFor(ROUND_ROBIN));
    await setup.harness.settle();
    const picker = setup.harness.readyPicker();
    checkPicker(`metrics ${setup.on ? 'on' : 'off'}`, ROUND_ROBIN, picker, set);
    pickers.push(picker);
  }
  setups.forEach((_, i) => timeMeteredCalls(pickers[i]!, args, plan.pickCount));
  for (let round = 0; round < plan.pickRounds; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      setups[i]!.samples.push(timeMeteredCalls(pickers[i]!, args, plan.pickCount));
    }
  }
  for (const [i, setup] of setups.entries()) {
    if (setup.harness.channel.picker !== pickers[i]) {
      throw new Error('metrics: the balancer published a new picker while being timed');
    }
    setup.harness.destroy();
  }
  // A balancer that measured nothing must fail, not be timed as cheap.
  const timed = plan.pickCount * (plan.pickRounds + 1);
  const started = await attemptsStarted(reader);
  if (started !== timed) {
    throw new Error(`metrics: ${started} attempts counted, ${timed} expected (one per timed call)`);
  }
  const on = median(setups[0]!.samples);
  const off = median(setups[1]!.samples);
  log(
    `call ${ROUND_ROBIN}@10 with metrics on: ${fmt(on)} CPU ns, off: ${fmt(off)} CPU ns ` +
      `(+${fmt(on - off)} ns; median of ${plan.pickRounds} × ${plan.pickCount.toLocaleString('en')})`,
  );
  notes.push(
    `metricsCallNs: CPU ns per call (pick, onCallStarted, onCallEnded(OK)) of ${ROUND_ROBIN} at 10 ` +
      'endpoints with OpenTelemetry metrics on (an SDK MeterProvider, periodic reader every ' +
      `second) and off (the ${METRICS_OPTION} channel option): ${fmt(on)} vs ${fmt(off)} ns.`,
  );
  return { on, off };
}

/**
 * Runs the micro benchmarks. Quick mode (fewer picks and rounds) is for CI
 * and tests; its numbers are noisier.
 */
export async function runMicro(options: MicroOptions): Promise<MicroResults> {
  const log = options.log ?? ((): void => {});
  const plan = options.quick ? QUICK : FULL;
  // Metrics on for the process, so that `benchMetricsCalls` can compare; every other balancer
  // here is left out of them by its channel option (`UNMEASURED`).
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 1000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const registration = register({ grpc, metrics: { meterProvider } });
  const notes: string[] = [
    `node ${process.version}, grpc-js ${registration.grpcJsVersion}, ` +
      `${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown model'}), ` +
      `${options.quick ? 'quick' : 'full'} mode.`,
    'No network: every subchannel is a FakeSubchannel that stands in for a connection.',
  ];
  const started = process.hrtime.bigint();
  const phase = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const start = process.hrtime.bigint();
    const result = await run();
    log(`(${name} took ${fmt(msSince(start) / 1000)} s)`);
    return result;
  };
  const pickNs = await phase('picks', () => benchPicks(plan, log, notes));
  const update10kMs = await phase('first update', () => benchFirstUpdate(plan, log, notes));
  const updateDiff10kMs = await phase('diff update', () => benchDiffUpdate(plan, log, notes));
  const applied10kMs = await phase('applied', () => benchApplied(plan, log, notes));
  const updateWeights10kMs = await phase('weights update', () =>
    benchWeightUpdate(plan, log, notes),
  );
  const bytesPerEndpoint = await phase('memory', () => benchMemory(plan, log, notes));
  const metricsCallNs = await phase('metrics', () => benchMetricsCalls(plan, reader, log, notes));
  const consistentHash = await phase('consistent hash', () =>
    benchConsistentHash(options.quick, log, notes),
  );
  await meterProvider.shutdown();
  log(`micro benchmarks took ${fmt(msSince(started) / 1000)} s`);
  return {
    pickNs,
    update10kMs,
    updateDiff10kMs,
    applied10kMs,
    updateWeights10kMs,
    bytesPerEndpoint,
    metricsCallNs,
    consistentHash,
    notes,
  };
}
