import {
  ConfigError,
  formatHostPort,
  type EndpointResolver,
  type ResolutionSink,
  type ResolvedEndpoint,
} from '@grpc-lb/core';
import { Range, type Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import { parseEndpointValue } from './endpoint-value';
import { createEtcdClient, describeEtcdFailure, scrub } from './etcd-client';
import { describeConnection, type EtcdConnectionSettings } from './etcd-options';
import type { EtcdTarget } from './etcd-target';
import { EtcdResolutionError } from './errors';

/** Keys read per range request when listing a prefix (etcd answers in pages of this size). */
export const LIST_PAGE_SIZE = 1_000;
/**
 * A watch etcd cancels is answered by a re-list at once — unless the watch before it was also
 * cancelled within this long of being opened (that would loop): then it is reported as an error
 * and retried with the channel's backoff.
 */
const RELIST_GUARD_MS = 1_000;
const MAX_SHOWN_VALUE = 120;
/**
 * etcd's default progress notification interval (`--experimental-watch-progress-notify-interval`,
 * 10 minutes). Our watches ask for progress notifications, so a member sends one at least this
 * often when nothing changes.
 */
export const DEFAULT_WATCH_PROGRESS_INTERVAL_MS = 600_000;
/** A watch that brings neither an event nor a progress notification for this many intervals is dead. */
export const SILENT_PROGRESS_INTERVALS = 3;
/** The longest progress interval accepted: a day (3 of them still fit a timer). */
const MAX_WATCH_PROGRESS_INTERVAL_MS = 86_400_000;

/** Checks the environment's settings; throws `ConfigError`. */
export function checkResolverEnvironment(env: EtcdResolverEnvironment, context: string): void {
  const interval = env.watchProgressIntervalMs;
  if (
    interval !== undefined &&
    (typeof interval !== 'number' ||
      !Number.isFinite(interval) ||
      interval < 10 ||
      interval > MAX_WATCH_PROGRESS_INTERVAL_MS)
  ) {
    throw new ConfigError(
      'watchProgressIntervalMs',
      `expected milliseconds between 10 and ${MAX_WATCH_PROGRESS_INTERVAL_MS}, got ${String(interval)}`,
      context,
    );
  }
}

interface Entry {
  /** Undefined for a key whose value never parsed. */
  readonly endpoint: ResolvedEndpoint | undefined;
  readonly modRevision: bigint;
}

export interface EtcdResolverEnvironment {
  /** Builds the etcd client; replaceable in tests. */
  readonly createClient?: (settings: EtcdConnectionSettings) => Etcd3;
  /**
   * The members' progress notification interval, in milliseconds (default 600000, etcd's default;
   * set it to the value of etcd's `--experimental-watch-progress-notify-interval`). A watch with
   * no event and no progress notification for 3 intervals is taken for dead and replaced.
   */
  readonly watchProgressIntervalMs?: number;
  /** Which of several members to use first (default: one at random, to spread clients). */
  readonly firstMember?: (count: number) => number;
  /** A monotonic clock in milliseconds (default `performance.now`); replaceable in tests. */
  readonly now?: () => number;
}

/** What the resolver is doing, for tests and debugging. */
export interface EtcdResolverState {
  readonly phase: 'idle' | 'syncing' | 'watching' | 'broken';
  /** Every event up to this revision has been applied; undefined before the first list. */
  readonly revision: bigint | undefined;
  /** Keys under the prefix, including those whose value was skipped. */
  readonly keys: number;
  /** How many times the prefix was listed since `start()` (1 + re-lists after compaction). */
  readonly lists: number;
  /** How many watches were opened since `start()`. */
  readonly watches: number;
  /** The etcd member (`host:port`) this resolver reads from now. */
  readonly member: string | undefined;
}

type WatchOutcome = { readonly kind: 'connected' } | { readonly kind: 'cancelled'; reason: string };

/**
 * One channel's view of an etcd prefix: list it (in pages, at one revision), then watch from
 * that revision + 1, so no change is missed. A broken watch is reported as an error (the channel
 * keeps its endpoints) and resumed from the last applied revision when the channel asks again;
 * a watch etcd cancels (its revision was compacted away) is replaced by a fresh list and watch.
 *
 * A member cut off from the quorum would serve its stale data silently: our streams require a
 * leader, so such a member cancels the watch ("no leader"), and a watch that brings neither an
 * event nor a progress notification for 3 progress intervals counts as dead too. Either way the
 * resolver moves to the next configured member and resumes there from its last revision (etcd's
 * revisions are cluster-wide, so the new member replays every change missed; a compacted
 * revision means a fresh list). With several members, the resolver talks to one at a time and
 * moves to the next after any failure.
 *
 * Each resolver has its own etcd client, closed on `stop()` and replaced after a failure.
 */
export class EtcdEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  /** Bumped by start, stop and each sync: continuations of an older one are dropped. */
  private epoch = 0;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private phase: EtcdResolverState['phase'] = 'idle';
  private entries = new Map<string, Entry>();
  private revision: bigint | undefined;
  private watchOpenedAt = -Infinity;
  /** Watches cancelled in a row, each within RELIST_GUARD_MS of being opened. */
  private quickCancels = 0;
  private lists = 0;
  private watches = 0;
  private flushImmediate: NodeJS.Immediate | undefined;
  /** Fires when the watch has been silent for too long (re-armed by every response). */
  private silenceTimer: NodeJS.Timeout | undefined;
  /** Index into the settings' endpoints of the member used now. */
  private member = 0;
  private readonly silenceMs: number;
  private readonly now: () => number;
  /** Key → the value last warned about, so each bad value is reported once. */
  private readonly warned = new Map<string, string>();
  private readonly createClient: (settings: EtcdConnectionSettings) => Etcd3;

  constructor(
    private readonly target: EtcdTarget,
    private readonly settings: EtcdConnectionSettings,
    env: EtcdResolverEnvironment = {},
  ) {
    checkResolverEnvironment(env, 'EtcdEndpointResolver');
    this.createClient = env.createClient ?? createEtcdClient;
    this.now = env.now ?? (() => performance.now());
    this.silenceMs =
      SILENT_PROGRESS_INTERVALS *
      (env.watchProgressIntervalMs ?? DEFAULT_WATCH_PROGRESS_INTERVAL_MS);
    const count = settings.endpoints.length;
    const first = env.firstMember?.(count) ?? Math.floor(Math.random() * count);
    this.member = Number.isInteger(first) && first >= 0 && first < count ? first : 0;
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.entries = new Map();
    this.revision = undefined;
    this.lists = 0;
    this.watches = 0;
    this.quickCancels = 0;
    this.warned.clear();
    this.sync();
  }

  refresh(): void {
    // A live watch is authoritative; only a broken one needs work.
    if (this.sink && this.phase === 'broken') this.sync();
  }

  stop(): void {
    this.epoch++;
    this.sink = undefined;
    this.phase = 'idle';
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.flushImmediate = undefined;
    this.dropWatcher();
    this.closeClient();
  }

  get state(): EtcdResolverState {
    return {
      phase: this.phase,
      revision: this.revision,
      keys: this.entries.size,
      lists: this.lists,
      watches: this.watches,
      member: this.settings.endpoints[this.member],
    };
  }

  /** The settings of the member used now: with several members, one at a time. */
  private memberSettings(): EtcdConnectionSettings {
    const { endpoints } = this.settings;
    if (endpoints.length <= 1) return this.settings;
    return { ...this.settings, endpoints: [endpoints[this.member]!] };
  }

  /** The member used now, for messages: `http://10.0.0.5:2379 as user "app"`. */
  private whereNow(): string {
    return describeConnection(this.memberSettings());
  }

  /** Moves to the next member (if there are several); the next client connects there. */
  private nextMember(): void {
    const count = this.settings.endpoints.length;
    if (count > 1) this.member = (this.member + 1) % count;
  }

  private sync(): void {
    const epoch = ++this.epoch;
    this.phase = 'syncing';
    this.dropWatcher();
    this.syncUntilWatching(epoch).catch((error: unknown) => {
      if (epoch === this.epoch) this.fail(error);
    });
  }

  /** List if we have no revision, then watch from it; a watch cancelled at once means re-list. */
  private async syncUntilWatching(epoch: number): Promise<void> {
    for (;;) {
      const listed = this.revision === undefined;
      if (listed) {
        await this.list(epoch);
        if (epoch !== this.epoch) return;
      }
      const from = this.revision! + 1n;
      const outcome = await this.openWatch(epoch, from);
      if (epoch !== this.epoch) return;
      if (outcome.kind === 'connected') {
        this.phase = 'watching';
        // After a resume with nothing new, still report: it tells the channel we are healthy again.
        if (!listed) this.scheduleFlush();
        return;
      }
      this.watcher = undefined;
      if (!this.relistAfterCancel()) {
        throw new Error(`etcd cancelled the watch from revision ${from}: ${outcome.reason}`);
      }
      this.revision = undefined;
    }
  }

  private ensureClient(): Etcd3 {
    this.client ??= this.createClient(this.memberSettings());
    return this.client;
  }

  private closeClient(): void {
    const client = this.client;
    this.client = undefined;
    client?.close();
  }

  private dropWatcher(): void {
    this.clearSilence();
    const watcher = this.watcher;
    this.watcher = undefined;
    if (!watcher) return;
    // Cancelling takes the watcher off etcd3's stream (or out of its reconnect list). It may
    // fail if the stream is already gone, which is what we wanted anyway.
    try {
      watcher.cancel().catch(() => undefined);
    } catch {
      // etcd3 throws synchronously when its stream is in an unexpected state.
    }
  }

  private async list(epoch: number): Promise<void> {
    const client = this.ensureClient();
    const prefix = Range.prefix(this.target.keyPrefix);
    const previous = this.entries;
    const entries = new Map<string, Entry>();
    let revision: string | undefined;
    let start = prefix.start;
    try {
      for (;;) {
        let request = client.getAll().inRange(new Range(start, prefix.end)).limit(LIST_PAGE_SIZE);
        if (revision !== undefined) request = request.revision(revision);
        const page = await request.exec();
        if (epoch !== this.epoch) return;
        revision ??= page.header.revision;
        for (const kv of page.kvs) {
          const key = kv.key.toString('utf8');
          entries.set(key, this.entryOf(key, kv, previous.get(key)));
        }
        const last = page.kvs[page.kvs.length - 1];
        if (!page.more || !last) break;
        start = Buffer.concat([last.key, Buffer.from([0])]);
      }
    } catch (error) {
      throw new EtcdResolutionError(
        this.target.keyPrefix,
        describeEtcdFailure(
          error,
          `etcd list of "${this.target.keyPrefix}"`,
          this.settings,
          this.whereNow(),
        ),
      );
    }
    for (const key of this.warned.keys()) if (!entries.has(key)) this.warned.delete(key);
    this.entries = entries;
    this.revision = BigInt(revision);
    this.lists++;
    this.publish();
  }

  /** Opens a watch from `from`; settles on etcd's answer, or rejects after the timeout. */
  private openWatch(epoch: number, from: bigint): Promise<WatchOutcome> {
    const client = this.ensureClient();
    const watcher = client
      .watch()
      .prefix(this.target.keyPrefix)
      .startRevision(from.toString())
      .watcher();
    this.watcher = watcher;
    this.watches++;
    this.watchOpenedAt = this.now();
    const describe = (error: unknown): EtcdResolutionError =>
      new EtcdResolutionError(
        this.target.keyPrefix,
        describeEtcdFailure(
          error,
          `etcd watch of "${this.target.keyPrefix}" from revision ${from}`,
          this.settings,
          this.whereNow(),
        ),
      );
    return new Promise<WatchOutcome>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(describe(new Error(`not established within ${this.settings.timeoutMs} ms`)));
      }, this.settings.timeoutMs);
      timer.unref();
      const settle = (): boolean => {
        if (settled || epoch !== this.epoch) return false;
        settled = true;
        clearTimeout(timer);
        return true;
      };
      watcher.on('connected', () => {
        if (settle()) {
          this.armSilence(watcher);
          resolve({ kind: 'connected' });
        }
      });
      watcher.on('data', (response: IWatchResponse) => this.onWatchData(watcher, response));
      watcher.on('disconnected', (error: Error) => {
        if (settle()) {
          reject(describe(error));
        } else {
          this.onWatchLost(
            watcher,
            new EtcdResolutionError(
              this.target.keyPrefix,
              describeEtcdFailure(
                error,
                `etcd watch of "${this.target.keyPrefix}" (at revision ${String(this.revision)})`,
                this.settings,
                this.whereNow(),
              ),
            ),
          );
        }
      });
      // etcd cancelled the watch: its revision was compacted, or the user may not watch here.
      // Always listened to: an unhandled 'error' event would throw.
      watcher.on('error', (error: Error) => {
        const reason = scrub(error.message, this.settings).replace(/^Watcher canceled: ?/, '');
        if (settle()) resolve({ kind: 'cancelled', reason: reason || 'no reason given' });
        else this.onWatchCancelled(watcher, reason);
      });
    });
  }

  private onWatchData(watcher: Watcher, response: IWatchResponse): void {
    if (watcher !== this.watcher || !this.sink) return;
    this.armSilence(watcher);
    const events = response.events;
    for (const event of events) {
      const key = event.kv.key.toString('utf8');
      if (event.type === 'Put') {
        this.entries.set(key, this.entryOf(key, event.kv, this.entries.get(key)));
      } else {
        this.entries.delete(key);
        this.warned.delete(key);
      }
    }
    const last = events[events.length - 1];
    if (last) {
      this.revision = BigInt(last.kv.mod_revision);
      this.scheduleFlush();
    } else if (!response.created) {
      // A progress notification: every change up to the header's revision has been sent.
      const progress = BigInt(response.header.revision);
      if (this.revision === undefined || progress > this.revision) this.revision = progress;
    }
  }

  private onWatchLost(watcher: Watcher, error: EtcdResolutionError): void {
    if (watcher !== this.watcher || !this.sink) return;
    if (/\bno leader\b/i.test(error.message)) {
      this.onWatchDead(watcher, 'lost its leader (etcd cancelled the watch: no leader)', error);
      return;
    }
    this.fail(error);
  }

  private armSilence(watcher: Watcher): void {
    this.clearSilence();
    this.silenceTimer = setTimeout(() => {
      this.silenceTimer = undefined;
      this.onWatchDead(
        watcher,
        `sent neither an event nor a progress notification for ${this.silenceMs} ms`,
      );
    }, this.silenceMs);
    this.silenceTimer.unref();
  }

  private clearSilence(): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = undefined;
  }

  /**
   * The member behind the watch stopped following the cluster (no leader) or went silent. With
   * another member to go to, resume there at once from the last applied revision (unless this
   * watch was opened less than RELIST_GUARD_MS ago: then it is an error, retried with the
   * channel's backoff, so two bad members never make a loop); otherwise report the error.
   */
  private onWatchDead(watcher: Watcher, what: string, cause?: unknown): void {
    if (watcher !== this.watcher || !this.sink) return;
    const from = this.settings.endpoints[this.member];
    const error = new EtcdResolutionError(
      this.target.keyPrefix,
      scrub(
        `etcd watch of "${this.target.keyPrefix}" on member ${String(from)} (at revision ${String(this.revision)}) ${what}`,
        this.settings,
      ),
      { cause },
    );
    const young = this.now() - this.watchOpenedAt < RELIST_GUARD_MS;
    if (this.settings.endpoints.length <= 1 || young) {
      this.fail(error);
      return;
    }
    this.nextMember();
    this.sink.warn(
      `${error.message}; resuming from member ${this.settings.endpoints[this.member]}`,
    );
    this.dropWatcher();
    this.closeClient();
    this.sync();
  }

  private onWatchCancelled(watcher: Watcher, reason: string): void {
    if (watcher !== this.watcher || !this.sink) return;
    this.watcher = undefined;
    if (!this.relistAfterCancel()) {
      this.fail(new Error(`etcd cancelled the watch: ${reason || 'no reason given'}`));
      return;
    }
    this.revision = undefined;
    this.sync();
  }

  /**
   * etcd cancels a watch whose start revision was compacted away (after an outage), and one the
   * user may not read: re-list once, but not in a loop.
   */
  private relistAfterCancel(): boolean {
    if (this.now() - this.watchOpenedAt >= RELIST_GUARD_MS) this.quickCancels = 0;
    this.quickCancels++;
    return this.quickCancels <= 1;
  }

  private fail(error: unknown): void {
    const sink = this.sink;
    if (!sink) return;
    this.epoch++;
    this.phase = 'broken';
    this.dropWatcher();
    // A fresh client next time, on the next member if there are several: new connections, a new
    // auth token, no stuck stream, and no member that lost the cluster asked again first.
    this.closeClient();
    const reported =
      error instanceof EtcdResolutionError
        ? error
        : new EtcdResolutionError(
            this.target.keyPrefix,
            describeEtcdFailure(
              error,
              `etcd watch of "${this.target.keyPrefix}"`,
              this.settings,
              this.whereNow(),
            ),
          );
    this.nextMember();
    sink.error(reported);
  }

  /** Parses one key's value; a bad value keeps the key's previous address, if it had one. */
  private entryOf(key: string, kv: IKeyValue, previous: Entry | undefined): Entry {
    const value = kv.value.toString('utf8');
    const parsed = parseEndpointValue(value);
    if (parsed.ok) {
      if (!parsed.problems) {
        this.warned.delete(key);
      } else if (this.warned.get(key) !== value) {
        // The address is good: use it, leave the bad fields out, say so once per value.
        this.warned.set(key, value);
        this.sink?.warn(
          `etcd key "${key}": ${parsed.problems.join('; ')}; ${parsed.problems.length === 1 ? 'that field is' : 'those fields are'} ignored and the address is used`,
        );
      }
      return { endpoint: parsed.endpoint, modRevision: BigInt(kv.mod_revision) };
    }
    if (this.warned.get(key) !== value) {
      this.warned.set(key, value);
      const shown = value.length > MAX_SHOWN_VALUE ? `${value.slice(0, MAX_SHOWN_VALUE)}…` : value;
      const kept = previous?.endpoint
        ? `; keeping its previous address ${formatHostPort(previous.endpoint.host, previous.endpoint.port)}`
        : '';
      this.sink?.warn(
        `etcd key "${key}" skipped: ${parsed.problem} (value ${JSON.stringify(shown)})${kept}`,
      );
    }
    return previous ?? { endpoint: undefined, modRevision: BigInt(kv.mod_revision) };
  }

  private scheduleFlush(): void {
    if (this.flushImmediate) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = undefined;
      this.publish();
    });
  }

  /** The whole current set; two keys with one address count once (the newer registration). */
  private publish(): void {
    const sink = this.sink;
    if (!sink) return;
    const byAddress = new Map<string, Entry>();
    for (const entry of this.entries.values()) {
      const endpoint = entry.endpoint;
      if (!endpoint) continue;
      const address = formatHostPort(endpoint.host, endpoint.port);
      const seen = byAddress.get(address);
      if (!seen || seen.modRevision < entry.modRevision) byAddress.set(address, entry);
    }
    const endpoints = [...byAddress.values()].map((e) => e.endpoint!);
    sink.update({
      endpoints,
      note: `${endpoints.length} endpoints under etcd prefix "${this.target.keyPrefix}" at revision ${String(this.revision)}`,
    });
  }
}
