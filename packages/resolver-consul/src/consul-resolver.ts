import type * as http from 'node:http';
import {
  ConfigError,
  type EndpointResolver,
  type Resolution,
  type ResolutionSink,
} from '@grpc-lb/core';
import {
  BlockingQuery,
  type BlockingQueryLimits,
  type BlockingQuerySpec,
  type BlockingQueryState,
} from './blocking-query';
import {
  agentRequest,
  createPool,
  describeRequestError,
  describeTokenSource,
  type AgentResponse,
  type AgentSettings,
} from './consul-agent';
import type { ConsulTarget } from './consul-target';
import { formatDuration } from './duration';
import { ConsulResolutionError } from './errors';
import { endpointsFromHealth, healthQuery } from './health-entries';

/** Default number of queries that may start back to back (the token bucket's size). */
export const DEFAULT_QUERY_BURST = 3;
/** Default time for the token bucket to gain one query: at most one query a second, sustained. */
export const DEFAULT_QUERY_REFILL_MS = 1_000;
/** Default ceiling of the churn backoff: the refill time doubles up to this while the index churns. */
export const DEFAULT_MAX_CHURN_BACKOFF_MS = 2_000;

/** One HTTP GET to the agent (a seam for tests; the default speaks HTTP over the channel's pool). */
export type ConsulTransport = (
  path: string,
  options: { readonly signal: AbortSignal; readonly timeoutMs: number },
) => Promise<AgentResponse>;

export interface ConsulResolverOptions {
  /**
   * Queries that may start back to back before the rate limit applies (default 3). Consul asks
   * clients to rate-limit their blocking-query loop: each query takes a token from a bucket of
   * this size, refilled by one every `queryRefillMs`.
   */
  readonly queryBurst?: number;
  /** Time for the bucket to gain one token (default 1000 ms: one query a second, sustained). */
  readonly queryRefillMs?: number;
  /**
   * While the index churns (the bucket keeps running dry), the refill time doubles each time a
   * query has to wait for a token, up to this (default 2000 ms); it returns to `queryRefillMs`
   * once a blocking query stays open for a full `queryRefillMs` (the index went quiet).
   */
  readonly maxChurnBackoffMs?: number;
  /** Bound on a non-blocking query; a blocking one gets its wait + wait/16 (Consul's jitter) + this. Default 10000 ms. */
  readonly requestTimeoutMs?: number;
  /** For tests: the random source of the jitter (a wait for a token is lengthened by up to 20%). */
  readonly random?: () => number;
  /** For tests: replaces the HTTP client. */
  readonly transport?: ConsulTransport;
}

export interface ConsulResolverState extends BlockingQueryState {
  /** The loop following the service config's KV key, with a target's `config=`. */
  readonly config?: BlockingQueryState;
}

/** The service config document as last read: its text and ModifyIndex, or absent (404). */
type ConfigDocument =
  | { readonly present: true; readonly text: string; readonly modifyIndex: number }
  | { readonly present: false };

/**
 * The instances of one Consul service, followed with blocking queries on
 * `/v1/health/service/<name>`: each answer is the whole set, pushed to the sink; the next query
 * waits for a change past the answer's `X-Consul-Index`. Failures are reported to the sink (the
 * channel keeps its last good endpoints) and the next `refresh()` queries again, without an index.
 *
 * With `config=<key>` in the target, a second loop follows `/v1/kv/<key>` the same way (same
 * agent, token, TLS, datacenter and rate limit, a bucket of its own), and every resolution carries
 * the key's value as `serviceConfig` (the first one waits for both answers).
 */
export class ConsulEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  /** The previous answer's warnings (not repeated while they persist). */
  private warned: ReadonlySet<string> = new Set();
  private pool: http.Agent | undefined;
  private readonly transport: ConsulTransport | undefined;
  private readonly health: BlockingQuery;
  private readonly kv: BlockingQuery | undefined;
  /** The last usable health answer: endpoints and their note. */
  private listing: Resolution | undefined;
  /** The service config document as last read (undefined: not read yet). */
  private document: ConfigDocument | undefined;
  /** The error each loop last stopped on, while it is stopped (re-reported with updates). */
  private healthError: Error | undefined;
  private kvError: Error | undefined;

  constructor(
    private readonly target: ConsulTarget,
    private readonly settings: AgentSettings,
    options: ConsulResolverOptions = {},
  ) {
    const rates = rateLimits(options);
    const limits: BlockingQueryLimits = {
      ...rates,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      waitMs: target.waitMs,
      random: options.random ?? Math.random,
    };
    this.transport = options.transport;
    const send: BlockingQuerySpec['send'] = (path, request) => {
      if (this.transport) return this.transport(path, request);
      if (!this.pool) return Promise.reject(new Error('the resolver is stopped'));
      return agentRequest(this.settings, this.pool, 'GET', path, request);
    };
    const wait = formatDuration(target.waitMs);
    this.health = new BlockingQuery(limits, {
      path: (index) =>
        `/v1/health/service/${encodeURIComponent(target.service)}?${healthQuery(target, index, wait)}`,
      send,
      onAnswer: (response) => this.onHealthAnswer(response),
      onUnusable: (error) => this.failed('health', error),
      onRequestError: (error) =>
        this.failed(
          'health',
          this.error(
            `querying ${this.describe()}: ${describeRequestError(error, this.settings)}`,
            undefined,
            error,
          ),
        ),
    });
    const key = target.config;
    if (key !== undefined) {
      this.kv = new BlockingQuery(limits, {
        path: (index) => `/v1/kv/${encodeKey(key)}${kvQuery(target, index, wait)}`,
        send,
        onAnswer: (response) => this.onConfigAnswer(response),
        onUnusable: (error) => this.failed('kv', error),
        onRequestError: (error) =>
          this.failed(
            'kv',
            this.error(
              `querying ${this.describeKey()}: ${describeRequestError(error, this.settings)}`,
              undefined,
              error,
              key,
            ),
          ),
      });
    }
  }

  /** The health loop's state, and the config loop's under `config`. */
  state(): ConsulResolverState {
    return {
      ...this.health.state(),
      ...(this.kv !== undefined ? { config: this.kv.state() } : {}),
    };
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.warned = new Set();
    // Two blocking queries at once need two sockets.
    this.pool = this.transport
      ? undefined
      : createPool(this.settings, this.kv !== undefined ? 2 : 1);
    this.health.start();
    this.kv?.start();
  }

  refresh(): void {
    this.health.restart();
    this.kv?.restart();
  }

  stop(): void {
    this.sink = undefined;
    this.health.stop();
    this.kv?.stop();
    this.listing = undefined;
    this.document = undefined;
    this.healthError = undefined;
    this.kvError = undefined;
    // Destroys the blocking queries' sockets and any idle keep-alive one.
    this.pool?.destroy();
    this.pool = undefined;
  }

  private describe(): string {
    const filters = [
      ...this.target.tags.map((tag) => `tag ${tag}`),
      ...(this.target.dc !== undefined ? [`dc ${this.target.dc}`] : []),
      ...(this.target.filter !== undefined ? ['a filter'] : []),
    ];
    return `Consul service "${this.target.service}"${filters.length ? ` (${filters.join(', ')})` : ''} at ${this.settings.agent.url}`;
  }

  private describeKey(): string {
    const dc = this.target.dc !== undefined ? ` in dc ${this.target.dc}` : '';
    return `Consul KV key "${this.target.config ?? ''}"${dc} (the service config of "${this.target.service}") at ${this.settings.agent.url}`;
  }

  private error(
    message: string,
    status: number | undefined,
    cause?: unknown,
    key?: string,
  ): ConsulResolutionError {
    return new ConsulResolutionError(this.target.service, message, status, {
      ...(cause !== undefined ? { cause } : {}),
      ...(key !== undefined ? { key } : {}),
    });
  }

  /** A loop stopped on `error`: reported now, and again after each update while it stays stopped. */
  private failed(loop: 'health' | 'kv', error: Error): void {
    if (loop === 'health') this.healthError = error;
    else this.kvError = error;
    this.sink?.error(error);
  }

  private noTokenHint(): string {
    return 'no ACL token was given (set the `token` or `tokenFile` option, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)';
  }

  /**
   * Why the agent answered 403: no token given; a token it does not know ("ACL not found": a
   * typo, a deleted or expired token, another datacenter's); or a known token without `needs`.
   */
  private refusedTokenHint(body: string, needs: string): string {
    if (this.settings.tokenSource === 'none') return this.noTokenHint();
    const source = describeTokenSource(this.settings);
    if (/ACL not found/i.test(body)) {
      return `the ACL token (from ${source}) is not one the agent knows (deleted, expired, mistyped or from another datacenter)`;
    }
    return `the ACL token (from ${source}) lacks ${needs}`;
  }

  private onHealthAnswer(response: AgentResponse): Error | undefined {
    const { status, body } = response;
    if (status === 403) {
      const token = this.refusedTokenHint(
        body,
        `service:read on "${this.target.service}" (and node:read for its nodes)`,
      );
      return this.error(`reading ${this.describe()}: 403 ${firstLine(body)}: ${token}`, status);
    }
    if (status !== 200) {
      return this.error(`reading ${this.describe()}: HTTP ${status}: ${firstLine(body)}`, status);
    }
    let entries: unknown;
    try {
      entries = JSON.parse(body);
    } catch (error) {
      return this.error(`reading ${this.describe()}: the answer is not JSON`, status, error);
    }
    if (!Array.isArray(entries)) {
      return this.error(
        `reading ${this.describe()}: the answer is not a list of instances`,
        status,
      );
    }
    this.healthError = undefined;
    const converted = endpointsFromHealth(entries);
    const sink = this.sink;
    if (!sink) return undefined;
    // Each answer is the whole listing, so a malformed entry comes back with every change: warn
    // about it once, and again only after an answer without it.
    const warned = new Set(converted.warnings);
    for (const warning of warned) {
      if (!this.warned.has(warning)) sink.warn(`consul ${this.target.service}: ${warning}`);
    }
    this.warned = warned;
    if (converted.endpoints.length === 0 && converted.skipped > 0) {
      // One malformed listing must not empty a good set (the loop goes on).
      sink.error(
        this.error(`${this.describe()}: all ${converted.skipped} instances were malformed`, status),
      );
      return undefined;
    }
    const what = this.target.passingOnly ? 'passing instances' : 'instances';
    // With ACLs on, Consul answers 200 and an empty list when the token may not read the
    // service (no 403): say so, or "no instances" sends the operator the wrong way.
    const aclHint =
      response.headers['x-consul-default-acl-policy'] === 'deny'
        ? ` (ACLs are on, default deny: if instances exist, ${
            this.settings.tokenSource === 'none'
              ? this.noTokenHint()
              : `the ACL token (from ${describeTokenSource(this.settings)}) may lack service:read on "${this.target.service}" or node:read`
          })`
        : '';
    this.listing = {
      endpoints: converted.endpoints,
      note:
        converted.endpoints.length === 0
          ? `no ${what} of ${this.describe()}${aclHint}`
          : `${converted.endpoints.length} ${what} of ${this.describe()}`,
    };
    this.deliver();
    return undefined;
  }

  /**
   * A `/v1/kv/<key>` answer: 200 with the entry (its value base64), or 404 (no such key: no
   * service config from Consul). Anything else is a failure naming the key; a 403 also says which
   * ACL rule reads it.
   */
  private onConfigAnswer(response: AgentResponse): Error | undefined {
    const key = this.target.config ?? '';
    const { status, body } = response;
    let document: ConfigDocument;
    if (status === 404) {
      document = { present: false };
    } else if (status === 403) {
      const token = this.refusedTokenHint(body, `key:read on "${key}"`);
      return this.error(
        `reading ${this.describeKey()}: 403 ${firstLine(body)}: ${token}; a policy that reads it: ${keyReadRules(key)}`,
        status,
        undefined,
        key,
      );
    } else if (status !== 200) {
      return this.error(
        `reading ${this.describeKey()}: HTTP ${status}: ${firstLine(body)}`,
        status,
        undefined,
        key,
      );
    } else {
      const read = readKvEntry(body, key);
      if (typeof read === 'string') {
        return this.error(`reading ${this.describeKey()}: ${read}`, status, undefined, key);
      }
      document = read;
    }
    this.kvError = undefined;
    const previous = this.document;
    this.document = document;
    // A blocking query also wakes up for writes that leave the key as it was.
    if (previous !== undefined && sameDocument(previous, document)) return undefined;
    this.deliver();
    return undefined;
  }

  /**
   * The whole state to the sink: the last listing with the current document. Nothing until both
   * are known (a channel must not start on the wrong policy). A loop that is stopped on an error
   * has its error reported again after the update (the update answers the channel's retry).
   */
  private deliver(): void {
    const sink = this.sink;
    const listing = this.listing;
    if (!sink || !listing) return;
    const key = this.target.config;
    if (key === undefined) {
      sink.update(listing);
      return;
    }
    const document = this.document;
    if (document === undefined) return;
    if (document.present) {
      const source = `Consul KV ${key} (index ${document.modifyIndex})`;
      sink.update({
        endpoints: listing.endpoints,
        serviceConfig: document.text,
        serviceConfigSource: source,
        note: `${listing.note ?? ''}; service config from ${source}`,
      });
    } else {
      sink.update({
        endpoints: listing.endpoints,
        note: `${listing.note ?? ''}; no service config in Consul KV: key "${key}" is absent (the channel's own config applies)`,
      });
    }
    const stopped = this.healthError ?? this.kvError;
    if (stopped) sink.error(stopped);
  }
}

/** A KV key in a request path: each segment percent-encoded, the `/` kept. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** The query string of a KV read (with its `?`, or empty). */
function kvQuery(
  target: {
    readonly dc: string | undefined;
    readonly stale: boolean;
    readonly consistent: boolean;
  },
  index: number,
  wait: string,
): string {
  const params = new URLSearchParams();
  if (target.dc !== undefined) params.set('dc', target.dc);
  if (target.stale) params.set('stale', '');
  if (target.consistent) params.set('consistent', '');
  if (index >= 1) {
    params.set('index', String(index));
    params.set('wait', wait);
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** The ACL rules that let a token read `key`: its folder's prefix, or the key itself. */
export function keyReadRules(key: string): string {
  const slash = key.lastIndexOf('/');
  const exact = `key ${JSON.stringify(key)} { policy = "read" }`;
  return slash > 0
    ? `key_prefix ${JSON.stringify(key.slice(0, slash + 1))} { policy = "read" }, or ${exact}`
    : exact;
}

/** A 200 answer of `/v1/kv/<key>` → the entry's value text and ModifyIndex, or what is wrong. */
export function readKvEntry(
  body: string,
  key: string,
): { present: true; text: string; modifyIndex: number } | string {
  let entries: unknown;
  try {
    entries = JSON.parse(body);
  } catch {
    return 'the answer is not JSON';
  }
  const entry: unknown = Array.isArray(entries)
    ? entries.find((e: unknown) => (e as { Key?: unknown } | null)?.Key === key)
    : undefined;
  if (typeof entry !== 'object' || entry === null) {
    return `the answer is not a list holding the entry of "${key}"`;
  }
  const { Value: value, ModifyIndex: modifyIndex } = entry as {
    Value?: unknown;
    ModifyIndex?: unknown;
  };
  if (value !== null && value !== undefined && typeof value !== 'string') {
    return "the entry's Value is not base64 text";
  }
  if (typeof modifyIndex !== 'number' || !Number.isSafeInteger(modifyIndex)) {
    return 'the entry has no ModifyIndex';
  }
  // A key written without a value reads as null: an empty document (which is not JSON).
  const text = typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : '';
  return { present: true, text, modifyIndex };
}

function sameDocument(a: ConfigDocument, b: ConfigDocument): boolean {
  if (!a.present || !b.present) return a.present === b.present;
  return a.text === b.text && a.modifyIndex === b.modifyIndex;
}

/** The rate limit's settings with their defaults; throws `ConfigError` naming a bad one. */
export function rateLimits(options: ConsulResolverOptions): {
  burst: number;
  refillMs: number;
  maxChurnBackoffMs: number;
} {
  const burst = positive(options.queryBurst, DEFAULT_QUERY_BURST, 'queryBurst');
  if (!Number.isInteger(burst)) {
    throw new ConfigError('queryBurst', `expected an integer >= 1, got ${burst}`);
  }
  const refillMs = positive(options.queryRefillMs, DEFAULT_QUERY_REFILL_MS, 'queryRefillMs');
  const maxChurn = positive(
    options.maxChurnBackoffMs,
    DEFAULT_MAX_CHURN_BACKOFF_MS,
    'maxChurnBackoffMs',
  );
  return { burst, refillMs, maxChurnBackoffMs: Math.max(refillMs, maxChurn) };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(name, `expected a number > 0, got ${String(value)}`);
  }
  return value;
}

function firstLine(body: string): string {
  const line = body.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line || '(empty answer)';
}
