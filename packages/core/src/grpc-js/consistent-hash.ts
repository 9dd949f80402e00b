/**
 * `grpc-lb.consistent_hash`: each call's key (the `x-grpc-lb-hash-key`
 * header `setHashKey` sets, else the configured `hashHeader`) is hashed
 * (XXH64) onto a ring (gRFC A42) or a Maglev table (Envoy) of every endpoint
 * the resolver lists; the call goes to the endpoint there, or — when that
 * one is not in rotation (connecting, failing, unhealthy, ejected) — to the
 * next endpoint along the table that is. The table is built once per
 * endpoint set and weights (kept in the balancer's memo), not per picker, so
 * an endpoint that leaves rotation and comes back gets its keys back.
 * Calls without a key go to an endpoint in rotation at random, or in turn.
 */
import type { experimental } from '@grpc/grpc-js';
import {
  CONSISTENT_HASH_POLICY,
  HASH_KEY_HEADER,
  parseConsistentHashConfig,
  type ConsistentHashConfig,
} from '../consistent-hash-config';
import { HashRing, MaglevTable, type HashTable } from '../hash-ring';
import { xxh64String } from '../xxhash64';
import { createEndpointPolicy, type EndpointChild, type PolicyClasses } from './endpoint-policy';
import { RandomPicker, RoundRobinPicker, WeightedPicker } from './pickers';
import type { Runtime } from './runtime';

/** What a stored table was built from: the config's table fields and every endpoint's weight. */
interface StoredTable {
  readonly shape: string;
  readonly weights: ReadonlyMap<string, number>;
  readonly table: HashTable;
}

function tableShape(config: ConsistentHashConfig): string {
  return config.algorithm === 'maglev'
    ? `maglev:${config.tableSize}`
    : `ring_hash:${config.minRingSize}:${config.maxRingSize}`;
}

/** The resolver's weight (1 without one): slow start does not move keys, so the ramp is left out. */
function tableWeight(child: EndpointChild): number {
  return child.info?.weight ?? 1;
}

/**
 * The table for `children` from the memo under `memoKey`, built afresh only
 * when the set of endpoints, a weight or the table fields changed.
 */
export function hashTableFor(
  config: ConsistentHashConfig,
  children: readonly EndpointChild[],
  memo: Map<string, unknown>,
  memoKey: string,
  warn: (message: string) => void = () => {},
): HashTable {
  const shape = tableShape(config);
  const stored = memo.get(memoKey) as StoredTable | undefined;
  if (stored?.shape === shape && stored.weights.size === children.length) {
    let same = true;
    for (const child of children) {
      if (stored.weights.get(child.key) !== tableWeight(child)) {
        same = false;
        break;
      }
    }
    if (same) return stored.table;
  }
  const weights = new Map(children.map((c) => [c.key, tableWeight(c)] as const));
  const endpoints = [...weights].map(([key, weight]) => ({ key, weight }));
  const table =
    config.algorithm === 'maglev'
      ? new MaglevTable(endpoints, config.tableSize)
      : new HashRing(endpoints, config.minRingSize, config.maxRingSize);
  memo.set(memoKey, { shape, weights, table } satisfies StoredTable);
  // Once when endpoints start to go without a slot, not on every update of a large churning list.
  if (table.unplaced > 0 && !(stored !== undefined && stored.table.unplaced > 0)) {
    warn(
      config.algorithm === 'maglev'
        ? `${table.unplaced} of ${table.keys.length} endpoints have no slot in the Maglev table of ${config.tableSize}: they get no keyed call (raise tableSize)`
        : `${table.unplaced} of ${table.keys.length} endpoints have no entry on the ring of at most ${config.maxRingSize}: they get no keyed call (raise maxRingSize)`,
    );
  }
  return table;
}

/** The call's hash key: its own (`setHashKey`), else the configured header's values joined by ",". */
export function hashKeyOf(
  metadata: experimental.PickArgs['metadata'],
  header: string | undefined,
): string | undefined {
  const own = joined(metadata.get(HASH_KEY_HEADER));
  if (own !== undefined || header === undefined) return own;
  return joined(metadata.get(header));
}

function joined(values: readonly (string | Buffer)[]): string | undefined {
  if (values.length === 0) return undefined;
  const first = values[0]!;
  // One value, the usual case: no array or string built.
  if (values.length === 1 && typeof first === 'string') return first;
  return values.map(String).join(',');
}

export class ConsistentHashPicker implements experimental.Picker {
  constructor(
    private readonly table: HashTable,
    /** The child of each endpoint number of the table when it is in rotation. */
    private readonly inRotation: readonly (EndpointChild | undefined)[],
    private readonly header: string | undefined,
    private readonly fallback: experimental.Picker,
  ) {}

  /** The endpoint a key goes to now. */
  childFor(key: string): EndpointChild {
    const { owners } = this.table;
    const size = owners.length;
    let slot = this.table.slotOf(xxh64String(key));
    // Bounded: the picker is only made when some endpoint owning a slot is in rotation.
    for (let walked = 0; walked < size; walked++) {
      const child = this.inRotation[owners[slot]!];
      if (child) return child;
      slot = slot + 1 === size ? 0 : slot + 1;
    }
    throw new Error('consistent hash: no endpoint of the table is in rotation');
  }

  pick(args: experimental.PickArgs): experimental.PickResult {
    const key = hashKeyOf(args.metadata, this.header);
    if (key === undefined) return this.fallback.pick(args);
    return this.childFor(key).picker.pick(args);
  }
}

export interface HashPickerContext {
  readonly config: ConsistentHashConfig;
  /** Every endpoint the table covers (in rotation or not). */
  readonly children: readonly EndpointChild[];
  /** Those in rotation (not empty). */
  readonly ready: readonly EndpointChild[];
  readonly memo: Map<string, unknown>;
  /** Names this picker's table and rotation in the memo (a traffic-split subset has its own). */
  readonly scope: string;
  /** Where a warning about a new table goes (endpoints left off it). */
  readonly warn?: (message: string) => void;
  readonly rampOf: (child: EndpointChild) => number;
  readonly rampingUp: boolean;
}

/**
 * The picker over `ready`, or undefined when no endpoint in rotation is on
 * the table (all of weight 0). When those in rotation all own no slot (a
 * table too small for the endpoint list, with a warning), keyed calls go to
 * the fallback too rather than fail.
 */
export function makeConsistentHashPicker(
  context: HashPickerContext,
): experimental.Picker | undefined {
  const { config, children, ready, memo, scope, rampOf, rampingUp, warn } = context;
  const table = hashTableFor(config, children, memo, `consistent_hash:${scope}`, warn);
  // Filled (not holey): a lookup per slot walked stays a plain element load.
  const inRotation = Array.from<EndpointChild | undefined>({ length: table.keys.length });
  let onTable = 0;
  let withSlot = 0;
  for (const child of ready) {
    const at = table.index.get(child.key);
    if (at === undefined) continue;
    onTable++;
    if (table.placed[at] === 1) {
      inRotation[at] = child;
      withSlot++;
    }
  }
  if (onTable === 0) return undefined;
  const fallback: experimental.Picker =
    config.fallback === 'round_robin'
      ? rampingUp
        ? new WeightedPicker(ready, rampOf, new RandomPicker(ready))
        : new RoundRobinPicker(ready, memo, `consistent_hash:${scope}`)
      : new RandomPicker(ready, rampingUp ? rampOf : undefined);
  if (withSlot === 0) return fallback;
  return new ConsistentHashPicker(table, inRotation, config.hashHeader, fallback);
}

export function createConsistentHashPolicy(rt: Runtime): PolicyClasses {
  const { UnavailablePicker } = rt.grpc.experimental;
  return createEndpointPolicy<ConsistentHashConfig>(rt, {
    name: CONSISTENT_HASH_POLICY,
    parse: (json) => parseConsistentHashConfig(json),
    makePicker: ({ config, children, ready, memo, target, rampOf, rampingUp }) =>
      makeConsistentHashPicker({
        config,
        children,
        ready,
        memo,
        scope: 'all',
        rampOf,
        rampingUp,
        warn: (message) => rt.logger.warn(`${CONSISTENT_HASH_POLICY} for ${target}: ${message}`),
      }) ??
      new UnavailablePicker({
        details: `grpc-lb: no endpoint with a weight above 0 is ready for ${target} (${ready.length} ready with weight 0)`,
      }),
  });
}
