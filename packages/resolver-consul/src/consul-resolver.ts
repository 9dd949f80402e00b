import type * as http from 'node:http';
import type { EndpointResolver, ResolutionSink } from '@grpc-lb/core';
import { agentRequest, createPool, type AgentResponse, type AgentSettings } from './consul-agent';
import type { ConsulTarget } from './consul-target';
import { formatDuration } from './duration';
import { ConsulResolutionError } from './errors';
import { endpointsFromHealth, healthQuery, nextIndex } from './health-entries';

/** Default floor between the starts of two queries (Consul asks clients to rate-limit the loop). */
export const DEFAULT_MIN_QUERY_INTERVAL_MS = 100;

export interface ConsulResolverOptions {
  /** Floor between the starts of two queries, jittered up to +50% (default 100 ms). */
  readonly minQueryIntervalMs?: number;
  /** Bound on a non-blocking query; a blocking one gets its wait + wait/16 (Consul's jitter) + this. Default 10000 ms. */
  readonly requestTimeoutMs?: number;
  /** For tests: the random source of the jitter. */
  readonly random?: () => number;
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
  private lastQueryAt = -Infinity;
  private pool: http.Agent | undefined;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly minIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly random: () => number;

  constructor(
    private readonly target: ConsulTarget,
    private readonly settings: AgentSettings,
    options: ConsulResolverOptions = {},
  ) {
    this.minIntervalMs = options.minQueryIntervalMs ?? DEFAULT_MIN_QUERY_INTERVAL_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
  }

  state(): ConsulResolverState {
    return {
      phase: this.phase,
      index: this.index,
      queries: this.queries,
      indexResets: this.indexResets,
    };
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.queries = 0;
    this.indexResets = 0;
    this.pool = createPool(this.settings.agent);
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
    if (generation !== this.generation || this.phase === 'querying' || !pool) return;
    this.phase = 'querying';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queries++;
    this.lastQueryAt = Date.now();
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
      response = await agentRequest(this.settings, pool, 'GET', path, {
        signal: abort.signal,
        timeoutMs: blocking
          ? this.target.waitMs + Math.ceil(this.target.waitMs / 16) + this.requestTimeoutMs
          : this.requestTimeoutMs,
      });
    } catch (error) {
      if (generation !== this.generation) return;
      const code = (error as { code?: unknown }).code;
      this.fail(
        `querying ${this.describe()}: ${code === 'ECONNREFUSED' ? 'connection refused (is the agent running?)' : (error as Error).message}`,
        undefined,
        error,
      );
      return;
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
    if (generation !== this.generation) return;
    this.onResponse(generation, sent, response);
  }

  private onResponse(generation: number, sent: number, response: AgentResponse): void {
    const { status, body } = response;
    if (status === 403) {
      const token =
        this.settings.tokenSource === 'none'
          ? 'no ACL token was given (set the `token` option or CONSUL_HTTP_TOKEN)'
          : `the ACL token (from ${this.settings.tokenSource === 'option' ? 'the `token` option' : 'CONSUL_HTTP_TOKEN'}) lacks service:read on "${this.target.service}" (and node:read for its nodes)`;
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
      for (const warning of converted.warnings)
        sink.warn(`consul ${this.target.service}: ${warning}`);
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
                  ? 'no ACL token was given (set the `token` option or CONSUL_HTTP_TOKEN)'
                  : `the ACL token (from ${this.settings.tokenSource === 'option' ? 'the `token` option' : 'CONSUL_HTTP_TOKEN'}) may lack service:read on "${this.target.service}" or node:read`
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

  private scheduleNext(generation: number): void {
    if (generation !== this.generation) return;
    const due = this.lastQueryAt + this.minIntervalMs - Date.now();
    if (due <= 0) {
      this.phase = 'waiting';
      void this.query(generation);
      return;
    }
    this.phase = 'waiting';
    const delay = Math.round(due + this.random() * this.minIntervalMs * 0.5);
    this.timer = setTimeout(() => {
      this.timer = undefined;
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

function firstLine(body: string): string {
  const line = body.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line || '(empty answer)';
}
