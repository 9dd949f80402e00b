/** VirtualService `retries` → a gRPC `retryPolicy`. */
import { durationNanos, grpcDuration } from './duration';
import { At, isObject, otherFields, type Json } from './fields';

/** Envoy's `x-envoy-retry-grpc-on` conditions: the gRPC status each retries. */
const GRPC_CONDITIONS: Readonly<Record<string, string>> = {
  cancelled: 'CANCELLED',
  'deadline-exceeded': 'DEADLINE_EXCEEDED',
  internal: 'INTERNAL',
  'resource-exhausted': 'RESOURCE_EXHAUSTED',
  unavailable: 'UNAVAILABLE',
};

/**
 * Envoy conditions about the connection or stream failing, which a gRPC
 * client sees as UNAVAILABLE (503 in `retriable-status-codes` too: Envoy
 * turns UNAVAILABLE into 503).
 */
const CONNECTION_CONDITIONS = new Set([
  'connect-failure',
  'refused-stream',
  'reset',
  'reset-before-request',
  '5xx',
  'gateway-error',
]);

/** Istio's retryOn when `retries` gives attempts and no retryOn. */
const ISTIO_DEFAULT_RETRY_ON =
  'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

/** gRPC allows at most 5 attempts (the first and 4 retries). */
export const MAX_ATTEMPTS = 5;

/** Envoy's default retry back-off: 25 ms base, at most 10 times that. */
const INITIAL_BACKOFF_NANOS = 25e6;

/** The retry policy of a route, or undefined when it retries nothing. */
export function translateRetries(at: At, value: unknown): Json | undefined {
  const retries = at.object(value);
  for (const key of otherFields(retries, ['attempts', 'retryOn', 'perTryTimeout', 'backoff'])) {
    if (key === 'retryRemoteLocalities') {
      at.key(key).note('not applied: the client has no notion of localities');
    } else if (key === 'retryIgnorePreviousHosts') {
      at.key(key).note('not applied: a retry is picked by the balancer like a first attempt');
    } else at.key(key).note('not applied by the client');
  }
  if (retries['perTryTimeout'] !== undefined) {
    at.key('perTryTimeout').note(
      'not applied: a gRPC retry policy has no per-attempt timeout (the route timeout covers every attempt)',
    );
  }
  const attemptsRaw = isObject(retries['attempts'])
    ? retries['attempts']['value']
    : retries['attempts'];
  const attempts =
    attemptsRaw === undefined ? 0 : at.key('attempts').integer(attemptsRaw, 0, 1_000_000);
  if (attempts === 0) return undefined;
  let maxAttempts = attempts + 1;
  if (maxAttempts > MAX_ATTEMPTS) {
    at.key('attempts').note(
      `${attempts} retries is more than gRPC allows: ${MAX_ATTEMPTS - 1} retries (${MAX_ATTEMPTS} attempts) are made`,
    );
    maxAttempts = MAX_ATTEMPTS;
  }
  const retryOnAt = at.key('retryOn');
  const retryOn =
    retries['retryOn'] === undefined
      ? ISTIO_DEFAULT_RETRY_ON
      : retryOnAt.string(retries['retryOn']);
  const codes = new Set<string>();
  const connection: string[] = [];
  const unused: string[] = [];
  for (const raw of retryOn.split(',')) {
    const condition = raw.trim();
    if (condition === '') continue;
    if (Object.hasOwn(GRPC_CONDITIONS, condition)) codes.add(GRPC_CONDITIONS[condition]!);
    else if (CONNECTION_CONDITIONS.has(condition)) {
      codes.add('UNAVAILABLE');
      connection.push(condition);
    } else if (condition === 'retriable-status-codes' || condition === '503') {
      // Istio's default list retries 503, which is how Envoy reports UNAVAILABLE.
      codes.add('UNAVAILABLE');
    } else unused.push(condition);
  }
  if (retries['retryOn'] !== undefined && connection.length > 0) {
    retryOnAt.note(
      `${connection.join(', ')}: a failed or reset connection reaches a gRPC client as UNAVAILABLE: ` +
        'retried on UNAVAILABLE (which also retries calls the server answers UNAVAILABLE)',
    );
  }
  if (unused.length > 0) {
    retryOnAt.note(
      `${unused.join(', ')}: HTTP-only retry condition${unused.length > 1 ? 's' : ''}, not applied to gRPC calls ` +
        '(the gRPC ones are cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)',
    );
  }
  if (codes.size === 0) {
    retryOnAt.note('no condition applies to gRPC calls: the route gets no retry policy');
    return undefined;
  }
  let initial = INITIAL_BACKOFF_NANOS;
  if (retries['backoff'] !== undefined) {
    const backoffAt: At = at.key('backoff');
    const text = backoffAt.string(retries['backoff']);
    const nanos = durationNanos(text);
    if (nanos === undefined || nanos < 1e6) {
      backoffAt.fail(`expected a duration of at least 1ms like "25ms", got "${text}"`);
    }
    initial = nanos;
  }
  return {
    maxAttempts,
    initialBackoff: grpcDuration(initial),
    maxBackoff: grpcDuration(initial * 10),
    backoffMultiplier: 2,
    retryableStatusCodes: [...codes],
  };
}
