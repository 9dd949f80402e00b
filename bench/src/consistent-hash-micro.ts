/**
 * Consistent hashing in the micro group: the tables' own quality (share of
 * keys moved when one endpoint is removed, load of the busiest endpoint over
 * the mean, both computed from the tables, not sampled) and the pick cost of
 * `grpc-lb.consistent_hash` at 10,000 endpoints next to `grpc-lb.round_robin`,
 * both through the real balancer over stand-in subchannels, in interleaved
 * rounds (read as a ratio).
 */
import * as grpc from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import {
  consistentHash,
  HashRing,
  MaglevTable,
  METRICS_OPTION,
  normalizeEndpoint,
  roundRobin,
  type HashTable,
} from '@grpc-lb/core';
import { FakeChannel } from './fake-subchannel';

export interface ConsistentHashMicro {
  /** Share of the hash space whose endpoint changes when 1 of N equal endpoints is removed (mean over the N). */
  movedShareOnRemove: Record<string, number>;
  /** Hash space of the busiest endpoint ÷ the mean, N equal endpoints. */
  loadMaxOverMean: Record<string, number>;
  /** ns per pick at 10,000 endpoints: keyed "ring_hash", "maglev"; "round_robin" for comparison. */
  pickNs10k: Record<string, number>;
}

const { ChildLoadBalancerHandler, PickResultType, parseLoadBalancingConfig, statusOrFromValue } =
  grpc.experimental;
type LbConfigJson = Parameters<typeof parseLoadBalancingConfig>[0];
const HEADER = 'x-user-id';
const KEYS = 1024;
const RING = { min: 1024, max: 8_388_608 };

function addresses(n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`,
  );
}

function build(algorithm: 'ring_hash' | 'maglev', keys: readonly string[]): HashTable {
  const endpoints = keys.map((key) => ({ key, weight: 1 }));
  return algorithm === 'maglev'
    ? new MaglevTable(endpoints, 65537)
    : new HashRing(endpoints, RING.min, RING.max);
}

/** Each endpoint's share of the hash space: ring arcs measured exactly, Maglev slots counted. */
function shares(table: HashTable): Map<string, number> {
  const share = new Map<string, number>();
  const add = (owner: number, amount: number) => {
    const key = table.keys[owner]!;
    share.set(key, (share.get(key) ?? 0) + amount);
  };
  if (table instanceof HashRing) {
    const { points, owners } = table;
    const span = 2 ** 53;
    // Entry i takes the hashes after entry i − 1 up to its own; entry 0 also the wrap.
    for (let i = 0; i < points.length; i++) {
      const from = i === 0 ? points[points.length - 1]! - span : points[i - 1]!;
      add(owners[i]!, (points[i]! - from) / span);
    }
  } else {
    for (const owner of table.owners) add(owner, 1 / table.owners.length);
  }
  return share;
}

/** Share of the hash space that changes endpoint between two tables (a sweep over both). */
function movedBetween(before: HashTable, after: HashTable): number {
  if (before instanceof MaglevTable && after instanceof MaglevTable) {
    let moved = 0;
    for (let s = 0; s < before.owners.length; s++) {
      if (before.keys[before.owners[s]!] !== after.keys[after.owners[s]!]) moved++;
    }
    return moved / before.owners.length;
  }
  const a = before as HashRing;
  const b = after as HashRing;
  const ownerAt = (ring: HashRing, point: number) => {
    const slot = ring.slotOf({ hi: Math.floor(point / 0x200000), lo: (point % 0x200000) * 2048 });
    return ring.keys[ring.owners[slot]!];
  };
  // Between two consecutive boundaries of either ring both owners are constant.
  const bounds = Float64Array.from([...a.points, ...b.points]).sort();
  let moved = 0;
  for (let i = 0; i < bounds.length; i++) {
    const hi = bounds[i]!;
    const lo = i === 0 ? bounds[bounds.length - 1]! - 2 ** 53 : bounds[i - 1]!;
    if (hi === lo) continue;
    const point = Math.max(0, hi);
    if (ownerAt(a, point) !== ownerAt(b, point)) moved += hi - lo;
  }
  return moved / 2 ** 53;
}

function tableQuality(
  sizes: readonly number[],
  log: (line: string) => void,
): Pick<ConsistentHashMicro, 'movedShareOnRemove' | 'loadMaxOverMean'> {
  const movedShareOnRemove: Record<string, number> = {};
  const loadMaxOverMean: Record<string, number> = {};
  for (const algorithm of ['ring_hash', 'maglev'] as const) {
    for (const n of sizes) {
      const keys = addresses(n);
      const full = build(algorithm, keys);
      const load = [...shares(full).values()];
      const label = `${algorithm}@${n}`;
      const removals = Math.min(n, 10);
      let moved = 0;
      for (let r = 0; r < removals; r++) {
        const gone = Math.floor((r * n) / removals);
        moved += movedBetween(
          full,
          build(
            algorithm,
            keys.filter((_, i) => i !== gone),
          ),
        );
      }
      const movedShare = moved / removals;
      const loadRatio = Math.max(...load) * n;
      movedShareOnRemove[label] = movedShare;
      loadMaxOverMean[label] = loadRatio;
      log(
        `consistent hash ${label}: removing 1 moves ${(100 * movedShare).toFixed(2)}% ` +
          `(1/N = ${(100 / n).toFixed(2)}%), busiest endpoint ${loadRatio.toFixed(3)} × mean`,
      );
    }
  }
  return { movedShareOnRemove, loadMaxOverMean };
}

const sink: { result: experimental.PickResult | undefined } = { result: undefined };

function timePicks(
  picker: experimental.Picker,
  args: readonly experimental.PickArgs[],
  count: number,
): number {
  let bad = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const result = picker.pick(args[i & (KEYS - 1)]!);
    if (result.pickResultType !== PickResultType.COMPLETE || result.subchannel === null) bad++;
    sink.result = result;
  }
  const elapsed = Number(process.hrtime.bigint() - start);
  if (bad > 0) throw new Error(`${bad} of ${count} picks were not COMPLETE with a subchannel`);
  return elapsed / count;
}

async function readyPicker(
  json: Record<string, unknown>,
  endpoints: experimental.Endpoint[],
): Promise<{ picker: experimental.Picker; destroy: () => void }> {
  const channel = new FakeChannel(grpc, 'connected');
  const handler = new ChildLoadBalancerHandler(channel);
  handler.updateAddressList(
    statusOrFromValue(endpoints),
    parseLoadBalancingConfig(json as LbConfigJson),
    { [METRICS_OPTION]: false },
    'consistent hash micro benchmark',
  );
  // Connections start a paced number per turn of the event loop: wait for all of them, then for
  // the batched picker rebuild.
  const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
  for (let i = 0; channel.readySubchannels < endpoints.length; i++) {
    if (i > 10_000) throw new Error(`${channel.readySubchannels} of ${endpoints.length} READY`);
    await turn();
  }
  for (let i = 0; i < 3; i++) await turn();
  if (channel.state !== grpc.connectivityState.READY || !channel.picker)
    throw new Error(
      `balancer is ${grpc.connectivityState[channel.state]}: ${channel.errorMessage ?? ''}`,
    );
  return {
    picker: channel.picker,
    destroy: () => {
      handler.destroy();
      if (channel.refs !== 0) throw new Error(`${channel.refs} subchannel refs left`);
    },
  };
}

/** The same key always reaches the same stand-in subchannel: a broken picker fails, not timed. */
function checkSticky(
  label: string,
  picker: experimental.Picker,
  args: readonly experimental.PickArgs[],
): void {
  const first = args.map((a) => picker.pick(a).subchannel?.getAddress());
  const again = args.map((a) => picker.pick(a).subchannel?.getAddress());
  if (first.some((a, i) => a === undefined || a !== again[i]))
    throw new Error(`${label}: a key reached two endpoints`);
  if (new Set(first).size < KEYS / 2)
    throw new Error(`${label}: ${KEYS} keys reached ${new Set(first).size} endpoints`);
}

export async function benchConsistentHash(
  quick: boolean,
  log: (line: string) => void,
  notes: string[],
): Promise<ConsistentHashMicro> {
  const quality = tableQuality(quick ? [10, 100] : [10, 100, 1000], log);
  const n = 10_000;
  const endpoints = addresses(n).map((key) => {
    const [host, port] = [
      key.slice(0, key.lastIndexOf(':')),
      Number(key.slice(key.lastIndexOf(':') + 1)),
    ];
    return { addresses: [{ host, port }], grpcLb: normalizeEndpoint({ host, port }) };
  });
  const args = Array.from({ length: KEYS }, (_, i) => {
    const metadata = new grpc.Metadata();
    metadata.set(HEADER, `user-${i}`);
    return { metadata, extraPickInfo: {} };
  });
  const setups = [
    ['ring_hash', consistentHash({ hashHeader: HEADER, maxRingSize: 65536 })],
    ['maglev', consistentHash({ hashHeader: HEADER, algorithm: 'maglev' })],
    ['round_robin', roundRobin()],
  ] as const;
  const count = quick ? 100_000 : 1_000_000;
  const rounds = quick ? 3 : 7;
  const pickers = [];
  for (const [label, json] of setups) {
    const made = await readyPicker(json, endpoints);
    if (label !== 'round_robin') checkSticky(label, made.picker, args);
    timePicks(made.picker, args, count);
    pickers.push({ label, ...made, samples: [] as number[] });
  }
  for (let r = 0; r < rounds; r++)
    for (const p of pickers) p.samples.push(timePicks(p.picker, args, count));
  const pickNs10k: Record<string, number> = {};
  for (const p of pickers) {
    const sorted = [...p.samples].sort((a, b) => a - b);
    pickNs10k[p.label] = sorted[sorted.length >> 1]!;
    p.destroy();
  }
  const rr = pickNs10k['round_robin']!;
  log(
    `consistent hash pick @10000: ring_hash ${pickNs10k['ring_hash']!.toFixed(1)} ns ` +
      `(${(pickNs10k['ring_hash']! / rr).toFixed(1)}× round robin), maglev ${pickNs10k['maglev']!.toFixed(1)} ns ` +
      `(${(pickNs10k['maglev']! / rr).toFixed(1)}×), round_robin ${rr.toFixed(1)} ns`,
  );
  notes.push(
    'consistentHash: movedShareOnRemove and loadMaxOverMean are computed from the tables (ring ' +
      'arcs measured exactly, Maglev slots of a 65537 table counted) for N equal endpoints, removing ' +
      '1 (mean over up to 10 choices); pickNs10k times grpc-lb.consistent_hash picks (1024 keys in ' +
      'the x-user-id header, in turn) at 10,000 endpoints beside grpc-lb.round_robin, interleaved, median of rounds.',
  );
  return { ...quality, pickNs10k };
}
