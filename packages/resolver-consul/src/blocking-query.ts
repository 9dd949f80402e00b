import type { AgentResponse } from './consul-agent';
import { nextIndex } from './health-entries';

/** What one blocking-query loop is doing. */
export interface BlockingQueryState {
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

export interface BlockingQueryLimits {
  readonly burst: number;
  readonly refillMs: number;
  readonly maxChurnBackoffMs: number;
  /** Bound on a non-blocking query; a blocking one gets wait + wait/16 + this. */
  readonly requestTimeoutMs: number;
  /** The blocking wait. */
  readonly waitMs: number;
  /** The jitter's random source. */
  readonly random: () => number;
}

export interface BlockingQuerySpec {
  /** The request path for `index` (0: a plain read, without index or wait). */
  path(index: number): string;
  /** One GET to the agent. */
  send(
    path: string,
    options: { readonly signal: AbortSignal; readonly timeoutMs: number },
  ): Promise<AgentResponse>;
  /**
   * An answer came: take it and return undefined (the loop then blocks on its `X-Consul-Index`),
   * or return what was wrong with it (the loop stops until `restart()`, without an index, and
   * then hands it to `onUnusable`).
   */
  onAnswer(response: AgentResponse): Error | undefined;
  /** The answer was unusable (`onAnswer`'s error); the loop has stopped until `restart()`. */
  onUnusable(error: Error): void;
  /** The request failed (refused, timed out, TLS; `error` as thrown); the loop has stopped until `restart()`. */
  onRequestError(error: unknown): void;
}

/**
 * One Consul blocking-query loop: a read without an index, then blocking reads on the answered
 * `X-Consul-Index` (an index that goes backwards or below 1 resets to a plain read), rate-limited
 * by a token bucket whose refill time doubles while the index churns. After a failure it waits
 * for `restart()`; `stop()` aborts the query in flight and clears its timer.
 */
export class BlockingQuery {
  private generation = 0;
  private phase: BlockingQueryState['phase'] = 'idle';
  private index = 0;
  private queries = 0;
  private indexResets = 0;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The rate limit: a token bucket, full at start. */
  private tokens: number;
  private refilledAt = 0;
  private refillMs: number;

  constructor(
    private readonly limits: BlockingQueryLimits,
    private readonly spec: BlockingQuerySpec,
  ) {
    this.tokens = limits.burst;
    this.refillMs = limits.refillMs;
  }

  state(): BlockingQueryState {
    return {
      phase: this.phase,
      index: this.index,
      queries: this.queries,
      indexResets: this.indexResets,
      tokens: this.tokens,
      refillMs: this.refillMs,
    };
  }

  get broken(): boolean {
    return this.phase === 'broken';
  }

  start(): void {
    this.stop();
    this.queries = 0;
    this.indexResets = 0;
    this.tokens = this.limits.burst;
    this.refilledAt = Date.now();
    this.refillMs = this.limits.refillMs;
    void this.query(this.generation);
  }

  /** After a failure: query again, without an index. */
  restart(): void {
    if (this.phase === 'broken') void this.query(this.generation);
  }

  stop(): void {
    this.generation++;
    this.phase = 'idle';
    this.index = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
    this.abort = undefined;
  }

  private async query(generation: number): Promise<void> {
    if (generation !== this.generation || this.phase === 'querying') return;
    this.phase = 'querying';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queries++;
    // A query started by restart() after an error takes a token too (never below zero).
    this.refill(Date.now());
    this.tokens = Math.max(0, this.tokens - 1);
    const startedAt = Date.now();
    const sent = this.index;
    const blocking = sent >= 1;
    const abort = new AbortController();
    this.abort = abort;
    const { waitMs, requestTimeoutMs } = this.limits;
    let response: AgentResponse;
    try {
      const timeoutMs = blocking
        ? waitMs + Math.ceil(waitMs / 16) + requestTimeoutMs
        : requestTimeoutMs;
      response = await this.spec.send(this.spec.path(sent), { signal: abort.signal, timeoutMs });
    } catch (error) {
      if (generation !== this.generation) return;
      this.breakLoop();
      this.spec.onRequestError(error);
      return;
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
    if (generation !== this.generation) return;
    // A blocking query that stayed open a full refill time means the index went quiet: the churn
    // backoff ends.
    if (blocking && Date.now() - startedAt >= this.limits.refillMs) {
      this.refillMs = this.limits.refillMs;
    }
    const index = nextIndex(sent, response.headers['x-consul-index']);
    this.phase = 'waiting';
    const problem = this.spec.onAnswer(response);
    if (generation !== this.generation) return;
    if (problem !== undefined) {
      this.breakLoop();
      this.spec.onUnusable(problem);
      return;
    }
    if (index === 0 && sent >= 1) this.indexResets++;
    this.index = index;
    this.scheduleNext(generation);
  }

  private breakLoop(): void {
    this.phase = 'broken';
    // The agent may have restarted with a lower index: the next query asks without one.
    this.index = 0;
  }

  /** Adds the tokens earned since the last refill, up to the bucket's size. */
  private refill(now: number): void {
    const earned = (now - this.refilledAt) / this.refillMs;
    if (earned > 0) this.tokens = Math.min(this.limits.burst, this.tokens + earned);
    this.refilledAt = now;
  }

  /**
   * The next blocking query: at once while the bucket holds a token, else when it has earned one
   * (plus up to 20% jitter). Having to wait means the index changes faster than the refill: the
   * refill time doubles (up to maxChurnBackoffMs) until a query blocks for a while again.
   */
  private scheduleNext(generation: number): void {
    this.phase = 'waiting';
    const now = Date.now();
    this.refill(now);
    if (this.tokens >= 1) {
      void this.query(generation);
      return;
    }
    const due = (1 - this.tokens) * this.refillMs;
    const delay = Math.ceil(due * (1 + this.limits.random() * 0.2));
    this.refillMs = Math.min(this.limits.maxChurnBackoffMs, this.refillMs * 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill(Date.now());
      // The wait was for exactly this token, whatever the new refill time says.
      this.tokens = Math.max(this.tokens, 1);
      void this.query(generation);
    }, delay);
    this.timer.unref();
  }
}
