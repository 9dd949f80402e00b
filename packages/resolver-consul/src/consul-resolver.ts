import type * as http from 'node:http';
import { ConfigError, type EndpointResolver, type ResolutionSink } from '@grpc-lb/core';
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
import { endpointsFromHealth, healthQuery, nextIndex } from './health-entries';

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

export interface ConsulResolverState {
  /** 'idle' before start/after stop; 'querying' (a query in flight); 'waiting' (rate limit); 'broken' after an error (waits for refresh). */
  readonly phase: 'idle' | 'querying' | 'waiting' | 'broken';
  /** The index the next query sends (0: none, a non-blocking query). */
  readonly index: number;
  /** Queries made since start. */
  readonly queries: number;
  /** Times the index was reset because it went backwards or was below 1. */
  readonly indexResets: number;
  /** Tokens left in the rate limit's bucket (fractional while it refills). */
  readonly tokens: number;
  /** The bucket's current refill time: `queryRefillMs`, or more while the index churns. */
  readonly refillMs: number;
}

/**
 * The instances of one Consul service, followed with blocking queries on
 * `/v1/health/service/<name>`: each answer is the whole set, pushed to the sink; the next query
 * waits for a change past the answer's `X-Consul-Index`. Failures are reported to the sink (the
 * channel keeps its last good endpoints) and the next `refresh()` queries again, without an index.
 */
export class ConsulEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  private generation = 0;
  private phase: ConsulResolverState['phase'] = 'idle';
  private index = 0;
  private queries = 0;
  private indexResets = 0;
  /** The previous answer's warnings (not repeated while they persist). */
  private warned: ReadonlySet<string> = new Set();
  private pool: http.Agent | undefined;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The rate limit: a token bucket, full at start. */
  private tokens: number;
  private refilledAt = 0;
  private refillMs: number;
  private readonly burst: number;
  private readonly baseRefillMs: number;
  private readonly maxChurnBackoffMs: number;
  private readonly requestTimeoutMs: number;
  private readonly random: () => number;
  private readonly transport: ConsulTransport | undefined;

  constructor(
    private readonly target: ConsulTarget,
    private readonly settings: AgentSettings,
    options: ConsulResolverOptions = {},
  ) {
    const limits = rateLimits(options);
    this.burst = limits.burst;
    this.baseRefillMs = limits.refillMs;
    this.maxChurnBackoffMs = limits.maxChurnBackoffMs;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.transport = options.transport;
    this.tokens = this.burst;
    this.refillMs = this.baseRefillMs;
  }

  state(): ConsulResolverState {
    return {
      phase: this.phase,
      index: this.index,
      queries: this.queries,
      indexResets: this.indexResets,
      tokens: this.tokens,
      refillMs: this.refillMs,
    };
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.queries = 0;
    this.indexResets = 0;
    this.warned = new Set();
    this.tokens = this.burst;
    this.refilledAt = Date.now();
    this.refillMs = this.baseRefillMs;
    this.pool = this.transport ? undefined : createPool(this.settings);
    void this.query(this.generation);
  }

  refresh(): void {
    if (this.phase === 'broken') void this.query(this.generation);
  }

  stop(): void {
    this.generation++;
    this.sink = undefined;
    this.phase = 'idle';
    this.index = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
    this.abort = undefined;
    // Destroys the blocking query's socket and any idle keep-alive one.
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

  private async query(generation: number): Promise<void> {
    const pool = this.pool;
    if (generation !== this.generation || this.phase === 'querying' || this.sink === undefined) {
      return;
    }
    if (!pool && !this.transport) return;
    this.phase = 'querying';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queries++;
    // A query started by refresh() after an error takes a token too (never below zero).
    this.refill(Date.now());
    this.tokens = Math.max(0, this.tokens - 1);
    const startedAt = Date.now();
    const sent = this.index;
    const blocking = sent >= 1;
    const abort = new AbortController();
    this.abort = abort;
    const path = `/v1/health/service/${encodeURIComponent(this.target.service)}?${healthQuery(
      this.target,
      sent,
      formatDuration(this.target.waitMs),
    )}`;
    let response: AgentResponse;
    try {
      const timeoutMs = blocking
        ? this.target.waitMs + Math.ceil(this.target.waitMs / 16) + this.requestTimeoutMs
        : this.requestTimeoutMs;
      response = this.transport
        ? await this.transport(path, { signal: abort.signal, timeoutMs })
        : await agentRequest(this.settings, pool!, 'GET', path, {
            signal: abort.signal,
            timeoutMs,
          });
    } catch (error) {
      if (generation !== this.generation) return;
      this.fail(
        `querying ${this.describe()}: ${describeRequestError(error, this.settings)}`,
        undefined,
        error,
      );
      return;
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
    if (generation !== this.generation) return;
    // A blocking query that stayed open a full refill time means the index went quiet: the churn
    // backoff ends.
    if (blocking && Date.now() - startedAt >= this.baseRefillMs) this.refillMs = this.baseRefillMs;
    this.onResponse(generation, sent, response);
  }

  private onResponse(generation: number, sent: number, response: AgentResponse): void {
    const { status, body } = response;
    if (status === 403) {
      const token =
        this.settings.tokenSource === 'none'
          ? 'no ACL token was given (set the `token` or `tokenFile` option, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)'
          : `the ACL token (from ${describeTokenSource(this.settings)}) lacks service:read on "${this.target.service}" (and node:read for its nodes)`;
      this.fail(`reading ${this.describe()}: 403 ${firstLine(body)}: ${token}`, status);
      return;
    }
    if (status !== 200) {
      this.fail(`reading ${this.describe()}: HTTP ${status}: ${firstLine(body)}`, status);
      return;
    }
    let entries: unknown;
    try {
      entries = JSON.parse(body);
    } catch (error) {
      this.fail(`reading ${this.describe()}: the answer is not JSON`, status, error);
      return;
    }
    if (!Array.isArray(entries)) {
      this.fail(`reading ${this.describe()}: the answer is not a list of instances`, status);
      return;
    }
    const index = nextIndex(sent, response.headers['x-consul-index']);
    if (index === 0 && sent >= 1) this.indexResets++;
    this.index = index;
    const converted = endpointsFromHealth(entries);
    const sink = this.sink;
    if (sink) {
      // Each answer is the whole listing, so a malformed entry comes back with every change: warn
      // about it once, and again only after an answer without it.
      const warned = new Set(converted.warnings);
      for (const warning of warned) {
        if (!this.warned.has(warning)) sink.warn(`consul ${this.target.service}: ${warning}`);
      }
      this.warned = warned;
      if (converted.endpoints.length === 0 && converted.skipped > 0) {
        // One malformed listing must not empty a good set.
        sink.error(
          new ConsulResolutionError(
            this.target.service,
            `${this.describe()}: all ${converted.skipped} instances were malformed`,
            status,
          ),
        );
      } else {
        const what = this.target.passingOnly ? 'passing instances' : 'instances';
        // With ACLs on, Consul answers 200 and an empty list when the token may not read the
        // service (no 403): say so, or "no instances" sends the operator the wrong way.
        const aclHint =
          response.headers['x-consul-default-acl-policy'] === 'deny'
            ? ` (ACLs are on, default deny: if instances exist, ${
                this.settings.tokenSource === 'none'
                  ? 'no ACL token was given (set the `token` or `tokenFile` option, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)'
                  : `the ACL token (from ${describeTokenSource(this.settings)}) may lack service:read on "${this.target.service}" or node:read`
              })`
            : '';
        sink.update({
          endpoints: converted.endpoints,
          note:
            converted.endpoints.length === 0
              ? `no ${what} of ${this.describe()}${aclHint}`
              : `${converted.endpoints.length} ${what} of ${this.describe()}`,
        });
      }
    }
    this.scheduleNext(generation);
  }

  /** Adds the tokens earned since the last refill, up to the bucket's size. */
  private refill(now: number): void {
    const earned = (now - this.refilledAt) / this.refillMs;
    if (earned > 0) this.tokens = Math.min(this.burst, this.tokens + earned);
    this.refilledAt = now;
  }

  /**
   * The next blocking query: at once while the bucket holds a token, else when it has earned one
   * (plus up to 20% jitter). Having to wait means the index changes faster than the refill: the
   * refill time doubles (up to maxChurnBackoffMs) until a query blocks for a while again.
   */
  private scheduleNext(generation: number): void {
    if (generation !== this.generation) return;
    this.phase = 'waiting';
    const now = Date.now();
    this.refill(now);
    if (this.tokens >= 1) {
      void this.query(generation);
      return;
    }
    const due = (1 - this.tokens) * this.refillMs;
    const delay = Math.ceil(due * (1 + this.random() * 0.2));
    this.refillMs = Math.min(this.maxChurnBackoffMs, this.refillMs * 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill(Date.now());
      // The wait was for exactly this token, whatever the new refill time says.
      this.tokens = Math.max(this.tokens, 1);
      void this.query(generation);
    }, delay);
    this.timer.unref();
  }

  private fail(message: string, status: number | undefined, cause?: unknown): void {
    this.phase = 'broken';
    // The agent may have restarted with a lower index: the next query asks without one.
    this.index = 0;
    this.sink?.error(
      new ConsulResolutionError(
        this.target.service,
        message,
        status,
        cause !== undefined ? { cause } : undefined,
      ),
    );
  }
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
