/**
 * `grpc-lb.consistent_hash`: sticky routing. Each call carries a key (a
 * header named in the config, or a value the application sets per call);
 * the same key goes to the same endpoint while the endpoint set is
 * unchanged, and adding or removing one of N endpoints moves about 1/N of
 * the keys. Two algorithms:
 *
 *     { "grpc-lb.consistent_hash": {
 *         "algorithm": "ring_hash",        // or "maglev"
 *         "hashHeader": "x-user-id",
 *         "minRingSize": 1024, "maxRingSize": 4096,   // ring_hash (gRFC A42)
 *         "tableSize": 65537,                         // maglev (Envoy)
 *         "fallback": "random" } }          // calls without a key; or "round_robin"
 */
import { ConfigError } from './errors';
import { Fields, integer, nonEmptyString, oneOf, STRICT, type ParseContext } from './json-fields';

export const CONSISTENT_HASH_POLICY = 'grpc-lb.consistent_hash';

/**
 * The header a call's own hash key travels in (`setHashKey`). It wins over
 * `hashHeader`. It is an ordinary header, so it is sent to the server too:
 * servers ignore metadata they do not read.
 */
export const HASH_KEY_HEADER = 'x-grpc-lb-hash-key';

/** gRFC A42's defaults and bounds for the ring size (entries). */
export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 4096;
export const RING_SIZE_CAP = 8_388_608;
/** Envoy's Maglev table size: default and largest accepted (both prime). */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
export const MAX_MAGLEV_TABLE_SIZE = 5_000_011;

export type HashAlgorithm = 'ring_hash' | 'maglev';
export type HashFallback = 'random' | 'round_robin';

export interface ConsistentHashConfig {
  readonly algorithm: HashAlgorithm;
  /** Lower-case header whose value is the key; its values joined with "," when it has several. */
  readonly hashHeader: string | undefined;
  readonly minRingSize: number;
  readonly maxRingSize: number;
  readonly tableSize: number;
  /** Where a call with no key goes: an endpoint in rotation at random, or the next in turn. */
  readonly fallback: HashFallback;
}

export const DEFAULT_CONSISTENT_HASH: ConsistentHashConfig = Object.freeze({
  algorithm: 'ring_hash',
  hashHeader: undefined,
  minRingSize: DEFAULT_MIN_RING_SIZE,
  maxRingSize: DEFAULT_MAX_RING_SIZE,
  tableSize: DEFAULT_MAGLEV_TABLE_SIZE,
  fallback: 'random',
});

export function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

const HEADER = /^[0-9a-z_.-]+$/;

function parseHeaderName(value: unknown, at: string): string {
  const name = nonEmptyString(value, at);
  if (name !== name.toLowerCase())
    throw new ConfigError(at, `header names are lower-case ("${name.toLowerCase()}")`);
  if (!HEADER.test(name))
    throw new ConfigError(at, `"${name}" is not a valid header name (0-9 a-z _ . - only)`);
  if (name.endsWith('-bin'))
    throw new ConfigError(at, `"${name}" is a binary header: hash keys are read from text headers`);
  if (name.startsWith(':') || name.startsWith('grpc-'))
    throw new ConfigError(at, `"${name}" is reserved by gRPC and never reaches the balancer`);
  return name;
}

/** Parses the policy's own fields (also a traffic-split subset's `consistentHash`). */
export function parseConsistentHashConfig(
  json: unknown,
  field = CONSISTENT_HASH_POLICY,
  ctx: ParseContext = STRICT,
): ConsistentHashConfig {
  const f = Fields.of(json ?? {}, field, ctx);
  f.only(['algorithm', 'hashHeader', 'minRingSize', 'maxRingSize', 'tableSize', 'fallback']);
  const algorithm =
    f.read('algorithm', (v, at) => oneOf(v, at, ['ring_hash', 'maglev'] as const)) ??
    DEFAULT_CONSISTENT_HASH.algorithm;
  const misplaced =
    algorithm === 'maglev'
      ? ['minRingSize', 'maxRingSize'].filter((n) => f.has(n))
      : ['tableSize'].filter((n) => f.has(n));
  if (misplaced.length > 0) {
    throw new ConfigError(
      f.at(misplaced[0]!),
      `applies to algorithm "${algorithm === 'maglev' ? 'ring_hash' : 'maglev'}", not "${algorithm}"`,
    );
  }
  const minRingSize =
    f.read('minRingSize', (v, at) => integer(v, at, 1, RING_SIZE_CAP)) ?? DEFAULT_MIN_RING_SIZE;
  const maxRingSize =
    f.read('maxRingSize', (v, at) => integer(v, at, 1, RING_SIZE_CAP)) ??
    Math.max(DEFAULT_MAX_RING_SIZE, minRingSize);
  if (minRingSize > maxRingSize) {
    throw new ConfigError(
      f.at('minRingSize'),
      `${minRingSize} is above maxRingSize ${maxRingSize}`,
    );
  }
  const tableSize =
    f.read('tableSize', (v, at) => {
      const n = integer(v, at, 2, MAX_MAGLEV_TABLE_SIZE);
      if (!isPrime(n)) throw new ConfigError(at, `must be a prime number (Maglev), got ${n}`);
      return n;
    }) ?? DEFAULT_MAGLEV_TABLE_SIZE;
  return {
    algorithm,
    hashHeader: f.read('hashHeader', parseHeaderName),
    minRingSize,
    maxRingSize,
    tableSize,
    fallback:
      f.read('fallback', (v, at) => oneOf(v, at, ['random', 'round_robin'] as const)) ??
      DEFAULT_CONSISTENT_HASH.fallback,
  };
}

/**
 * Sets a call's hash key: pass the call's metadata (`new grpc.Metadata()`),
 * then the call goes where every other call with this key goes. Returns the
 * metadata.
 */
export function setHashKey<M extends { set(key: string, value: string): void }>(
  metadata: M,
  key: string,
): M {
  metadata.set(HASH_KEY_HEADER, key);
  return metadata;
}
