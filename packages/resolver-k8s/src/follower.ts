import { Backoff } from '@grpc-lb/core';
import { statusOf, type K8sApi, type WatchEventType } from './k8s-client';

/** What a follower reports to the resolver. */
export interface FollowerEvents {
  /** Reading failed and no read has succeeded yet (a 403 names the rule to grant). */
  failed(error: Error): void;
  /** A lasting problem after a good read (what was read is kept), or its end. */
  warn(message: string): void;
}

/** Timings shared with the EndpointSlice watch (see k8s-resolver.ts). */
export interface FollowerTimings {
  readonly shortWatchMs: number;
  readonly watchIdleTimeoutMs: number;
  readonly watchStableMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

/** A listed or watched object: the fields every follower reads. */
export interface ObjectLike {
  readonly metadata?: { readonly name?: string; readonly resourceVersion?: string };
}

/**
 * Lists objects of one kind, then watches them from the list's resourceVersion (with bookmarks),
 * as the EndpointSlices are followed. A watch the server ends is reopened from the last
 * resourceVersion; 410 Gone re-lists; a watch silent for longer than the server's own timeout is
 * presumed dead and replaced. A list or watch failure keeps what was last read and retries after a
 * jittered, growing backoff, which only a watch that holds resets; until a first list succeeds,
 * each failure is reported by `failed`. `stop()` aborts every request and watch and cancels every
 * timer.
 *
 * A subclass says what to list and watch, and what to make of the list and of each event.
 */
export abstract class ListWatchFollower<T extends ObjectLike> {
  private generation = 0;
  private api: K8sApi | undefined;
  protected namespace = '';
  protected resourceVersion = '';
  /** A list has succeeded since `start()`. */
  private read = false;
  private listing = false;
  private relistRequested = false;
  private watch: { abort(): void } | undefined;
  private watchToken: object | undefined;
  private requests = new AbortController();
  private idleTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private shortWatches = 0;
  private readonly backoff: Backoff;
  /** The lasting problem warned about (said once, and again when it clears). */
  private trouble: string | undefined;

  constructor(
    private readonly events: FollowerEvents,
    private readonly timings: FollowerTimings,
  ) {
    this.backoff = new Backoff({ initialMs: timings.retryInitialMs, maxMs: timings.retryMaxMs });
  }

  /** What is followed, for messages: `ConfigMap prod/hello-lb`. */
  protected abstract get subject(): string;
  /** What a failure keeps and redoes, for messages: `its last document and listing it again`. */
  protected abstract readonly keeping: string;
  protected abstract list(
    api: K8sApi,
    signal: AbortSignal,
  ): Promise<{ items: T[]; resourceVersion: string }>;
  protected abstract openWatchOn(
    api: K8sApi,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal: AbortSignal,
  ): Promise<{ abort(): void }>;
  /** A list succeeded: these are all the objects now. */
  protected abstract listed(items: T[]): void;
  /** An ADDED, MODIFIED or DELETED event. */
  protected abstract changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', item: T): void;
  /** The error a failed list or watch is reported as (a 403 names the rule to grant). */
  protected abstract describe(error: unknown, api: K8sApi, doing: 'listing' | 'watching'): Error;
  /** `stop()` forgets what was read. */
  protected abstract forget(): void;

  /** Whether a list has succeeded since `start()`. */
  get hasRead(): boolean {
    return this.read;
  }

  start(api: K8sApi, namespace: string): void {
    this.stop();
    this.api = api;
    this.namespace = namespace;
    this.requests = new AbortController();
    void this.listAndWatch(this.generation);
  }

  /** Before a first good read: lists again now if the last attempt failed and nothing is under way. */
  refresh(): void {
    if (this.api === undefined || this.read) return;
    if (this.listing || this.watch !== undefined) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.listAndWatch(this.generation);
  }

  stop(): void {
    this.generation++;
    this.api = undefined;
    this.requests.abort();
    this.closeWatch();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.listing = false;
    this.relistRequested = false;
    this.read = false;
    this.resourceVersion = '';
    this.shortWatches = 0;
    this.trouble = undefined;
    this.backoff.reset();
    this.forget();
  }

  private closeWatch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    this.watchToken = undefined;
    const watch = this.watch;
    this.watch = undefined;
    watch?.abort();
  }

  private async listAndWatch(generation: number): Promise<void> {
    const api = this.api;
    if (generation !== this.generation || api === undefined) return;
    if (this.listing) {
      this.relistRequested = true;
      return;
    }
    this.listing = true;
    this.closeWatch();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      let list: { items: T[]; resourceVersion: string };
      try {
        list = await this.list(api, this.requests.signal);
      } catch (error) {
        if (generation === this.generation) this.failed(error, api, 'listing', generation);
        return;
      }
      if (generation !== this.generation) return;
      this.resourceVersion = list.resourceVersion;
      this.read = true;
      this.listed(list.items);
      try {
        await this.openWatch(api, generation);
      } catch (error) {
        if (generation === this.generation) this.failed(error, api, 'watching', generation);
      }
    } finally {
      if (generation === this.generation) {
        this.listing = false;
        if (this.relistRequested) {
          this.relistRequested = false;
          void this.listAndWatch(generation);
        }
      }
    }
  }

  private async openWatch(api: K8sApi, generation: number): Promise<void> {
    const openedAt = Date.now();
    const token = {};
    this.watchToken = token;
    const watch = await this.openWatchOn(
      api,
      (type: WatchEventType, object: unknown) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.onEvent(api, generation, type, object);
      },
      (error: unknown) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.watchToken = undefined;
        this.onWatchEnd(api, generation, error, Date.now() - openedAt);
      },
      this.requests.signal,
    );
    if (generation !== this.generation || this.watchToken !== token) {
      watch.abort();
      return;
    }
    this.watch = watch;
    this.armIdleTimer(generation);
    this.stableTimer = setTimeout(() => {
      this.stableTimer = undefined;
      if (generation !== this.generation || this.watchToken !== token) return;
      this.backoff.reset();
      this.shortWatches = 0;
      this.clearTrouble(`k8s ${this.subject}: watching it at ${api.server} works again`);
    }, this.timings.watchStableMs);
    this.stableTimer.unref();
  }

  private armIdleTimer(generation: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (generation !== this.generation) return;
      this.raise(
        `k8s ${this.subject}: no watch event, bookmark or end for ${this.timings.watchIdleTimeoutMs / 1000} s: the connection is presumed dead; re-listing`,
      );
      void this.listAndWatch(generation);
    }, this.timings.watchIdleTimeoutMs);
    this.idleTimer.unref();
  }

  private onEvent(api: K8sApi, generation: number, type: WatchEventType, object: unknown): void {
    this.armIdleTimer(generation);
    const item = object as T & { code?: number; message?: string };
    if (type === 'ERROR') {
      if (item.code === 410) void this.listAndWatch(generation);
      else {
        this.failed(
          Object.assign(new Error(item.message ?? 'watch error'), { code: item.code }),
          api,
          'watching',
          generation,
        );
      }
      return;
    }
    const version = item.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK' || !item.metadata?.name) return;
    this.shortWatches = 0;
    this.changed(type, item);
  }

  private onWatchEnd(api: K8sApi, generation: number, error: unknown, livedMs: number): void {
    this.watch = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    if (statusOf(error) === 410) {
      void this.listAndWatch(generation);
      return;
    }
    if (
      error !== null &&
      error !== undefined &&
      (error as { name?: string }).name !== 'AbortError'
    ) {
      this.failed(error, api, 'watching', generation);
      return;
    }
    this.shortWatches = livedMs < this.timings.shortWatchMs ? this.shortWatches + 1 : 0;
    if (this.shortWatches >= 3) {
      this.shortWatches = 0;
      this.retryLater(
        generation,
        `k8s ${this.subject}: watches at ${api.server} keep ending as soon as they open`,
      );
      return;
    }
    this.openWatch(api, generation).catch((failure: unknown) => {
      if (generation === this.generation) this.failed(failure, api, 'watching', generation);
    });
  }

  /**
   * A list or watch failed: before any good read, `failed` reports it (the channel must not start
   * without it); after one, what was read is kept and a warning says so once. Either way the
   * objects are listed again after the backoff.
   */
  private failed(
    error: unknown,
    api: K8sApi,
    doing: 'listing' | 'watching',
    generation: number,
  ): void {
    const failure = this.describe(error, api, doing);
    if (!this.read) {
      this.closeWatch();
      this.events.failed(failure);
      this.scheduleRetry(generation);
      return;
    }
    this.retryLater(generation, `k8s: ${failure.message}`);
  }

  private retryLater(generation: number, problem: string): void {
    this.closeWatch();
    this.raise(
      `${problem}; keeping ${this.keeping} with backoff (up to ${this.timings.retryMaxMs / 1000} s) until a watch holds`,
    );
    this.scheduleRetry(generation);
  }

  private scheduleRetry(generation: number): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.listAndWatch(generation);
    }, this.backoff.next());
    this.retryTimer.unref();
  }

  private raise(text: string): void {
    if (this.trouble === text) return;
    this.trouble = text;
    this.events.warn(text);
  }

  private clearTrouble(text: string): void {
    if (this.trouble === undefined) return;
    this.trouble = undefined;
    this.events.warn(text);
  }
}
