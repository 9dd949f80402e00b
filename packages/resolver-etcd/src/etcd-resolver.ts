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

/** The service config document (`?config=<key>`) as last read: its text and revision. */
interface ConfigDocument {
  readonly text: string;
  readonly modRevision: bigint;
}

/** What a watch follows: the endpoint prefix, or the service config key beside it. */
type Watched = 'endpoints' | 'config';

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
  /**
   * With `?config=<key>`: every change of the key up to this revision has been applied
   * (undefined before the first list, and without a config key).
   */
  readonly configRevision: bigint | undefined;
  /** With `?config=<key>`: whether the key exists (undefined before the first list). */
  readonly configPresent: boolean | undefined;
  /** Keys under the prefix, including those whose value was skipped. */
  readonly keys: number;
  /** How many times the prefix was listed since `start()` (1 + re-lists after compaction). */
  readonly lists: number;
  /** How many watches were opened since `start()`. */
  readonly watches: number;
  /** The etcd member (`host:port`) this resolver reads from now. */
  readonly member: string | undefined;
}

type WatchOutcome =
  | { readonly kind: 'connected' }
  | {
      readonly kind: 'cancelled';
      readonly watcher: Watcher;
      readonly reason: string;
      /** What the cancelled watch followed, from which revision (for the message). */
      readonly what: string;
    };

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
 * With `?config=<key>` the resolver also follows that key, the channel's service config: read in
 * the same list at the same revision (so the first resolution carries both), then watched beside
 * the prefix on the same client and stream, each watch resuming from its own last revision. Every
 * resolution carries the document's text and its revision (`serviceConfigSource`); an absent key
 * means no `serviceConfig` (the channel's own config applies).
 *
 * Each resolver has its own etcd client, closed on `stop()` and replaced after a failure.
 */
export class EtcdEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  /** Bumped by start, stop and each sync: continuations of an older one are dropped. */
  private epoch = 0;
  private client: Etcd3 | undefined;
  /** The open watches: the prefix's, then (with a config key) the key's. */
  private watchers: Watcher[] = [];
  private phase: EtcdResolverState['phase'] = 'idle';
  private entries = new Map<string, Entry>();
  private revision: bigint | undefined;
  /** The config key's text, null when the key is absent, undefined before it was read. */
  private document: ConfigDocument | null | undefined;
  /** Every change of the config key up to this revision has been applied. */
  private configRevision: bigint | undefined;
  private watchOpenedAt = -Infinity;
  /** Watches cancelled in a row, each within RELIST_GUARD_MS of being opened. */
  private quickCancels = 0;
  private lists = 0;
  private watches = 0;
  private flushImmediate: NodeJS.Immediate | undefined;
  /** Per watch: fires when it has been silent for too long (re-armed by every response). */
  private readonly silenceTimers = new Map<Watcher, NodeJS.Timeout>();
  /** Deadlines of watches not yet answered. */
  private readonly openTimers = new Set<NodeJS.Timeout>();
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
    this.document = undefined;
    this.configRevision = undefined;
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
    this.dropWatchers();
    this.closeClient();
  }

  get state(): EtcdResolverState {
    return {
      phase: this.phase,
      revision: this.revision,
      configRevision: this.configRevision,
      configPresent: this.document === undefined ? undefined : this.document !== null,
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

  /** How messages name what a watch follows: `"services/hello/"` or `service config key "config/hello"`. */
  private nameOf(what: Watched): string {
    return what === 'endpoints'
      ? `"${this.target.keyPrefix}"`
      : `service config key "${this.target.configKey ?? ''}"`;
  }

  private revisionOf(what: Watched): bigint | undefined {
    return what === 'endpoints' ? this.revision : this.configRevision;
  }

  private sync(): void {
    const epoch = ++this.epoch;
    this.phase = 'syncing';
    this.dropWatchers();
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
      // Each watch resumes from its own revision: the key's may be ahead of the prefix's.
      const opening = [this.openWatch(epoch, 'endpoints', this.revision! + 1n)];
      if (this.target.configKey !== undefined) {
        opening.push(this.openWatch(epoch, 'config', this.configRevision! + 1n));
      }
      const outcomes = await Promise.all(opening);
      if (epoch !== this.epoch) return;
      const cancelled = outcomes.find((o) => o.kind === 'cancelled');
      if (!cancelled) {
        this.phase = 'watching';
        // After a resume with nothing new, still report: it tells the channel we are healthy again.
        if (!listed) this.scheduleFlush();
        return;
      }
      // etcd dropped that watch already; the other one goes too: a re-list starts both afresh.
      this.watchers = this.watchers.filter((w) => w !== cancelled.watcher);
      this.dropWatchers();
      if (!this.relistAfterCancel()) {
        throw new Error(`etcd cancelled the watch of ${cancelled.what}: ${cancelled.reason}`);
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

  private dropWatchers(): void {
    this.clearSilence();
    for (const timer of this.openTimers) clearTimeout(timer);
    this.openTimers.clear();
    const watchers = this.watchers;
    this.watchers = [];
    for (const watcher of watchers) {
      // Cancelling takes the watcher off etcd3's stream (or out of its reconnect list). It may
      // fail if the stream is already gone, which is what we wanted anyway.
      try {
        watcher.cancel().catch(() => undefined);
      } catch {
        // etcd3 throws synchronously when its stream is in an unexpected state.
      }
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
    // The service config at the same revision: the first resolution carries both.
    const document = await this.readDocument(epoch, client, revision);
    if (epoch !== this.epoch) return;
    for (const key of this.warned.keys()) if (!entries.has(key)) this.warned.delete(key);
    this.entries = entries;
    this.revision = BigInt(revision);
    if (this.target.configKey !== undefined) {
      this.document = document;
      this.configRevision = this.revision;
    }
    this.lists++;
    this.publish();
  }

  /**
   * The config key at `revision`: its text, null when it is absent, undefined without a config
   * key. A failure names the key and, when refused, the permission needed.
   */
  private async readDocument(
    epoch: number,
    client: Etcd3,
    revision: string,
  ): Promise<ConfigDocument | null | undefined> {
    const key = this.target.configKey;
    if (key === undefined) return undefined;
    try {
      const response = await client.get(key).revision(revision).exec();
      if (epoch !== this.epoch) return undefined;
      const kv = response.kvs[0];
      return kv ? { text: kv.value.toString('utf8'), modRevision: BigInt(kv.mod_revision) } : null;
    } catch (error) {
      const denied =
        (error instanceof Error && error.constructor.name === 'EtcdPermissionDeniedError') ||
        /permission denied/i.test(String(error));
      const described = describeEtcdFailure(
        error,
        `etcd read of service config key "${key}" (at revision ${revision})`,
        this.settings,
        this.whereNow(),
      );
      throw new EtcdResolutionError(
        this.target.keyPrefix,
        denied
          ? `${described}; the etcd user's role needs the permission read on key "${key}"`
          : described,
        { configKey: key },
      );
    }
  }

  /** Opens a watch of `what` from `from`; settles on etcd's answer, or rejects after the timeout. */
  private openWatch(epoch: number, what: Watched, from: bigint): Promise<WatchOutcome> {
    const client = this.ensureClient();
    const builder = client.watch();
    const watcher = (
      what === 'endpoints'
        ? builder.prefix(this.target.keyPrefix)
        : builder.key(this.target.configKey ?? '')
    )
      .startRevision(from.toString())
      .watcher();
    this.watchers.push(watcher);
    this.watches++;
    this.watchOpenedAt = this.now();
    const name = this.nameOf(what);
    const configKey = what === 'config' ? { configKey: this.target.configKey } : undefined;
    const describe = (error: unknown): EtcdResolutionError =>
      new EtcdResolutionError(
        this.target.keyPrefix,
        describeEtcdFailure(
          error,
          `etcd watch of ${name} from revision ${from}`,
          this.settings,
          this.whereNow(),
        ),
        configKey,
      );
    return new Promise<WatchOutcome>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        this.openTimers.delete(timer);
        settled = true;
        reject(describe(new Error(`not established within ${this.settings.timeoutMs} ms`)));
      }, this.settings.timeoutMs);
      timer.unref();
      this.openTimers.add(timer);
      const settle = (): boolean => {
        if (settled || epoch !== this.epoch) return false;
        settled = true;
        clearTimeout(timer);
        this.openTimers.delete(timer);
        return true;
      };
      watcher.on('connected', () => {
        if (settle()) {
          this.armSilence(watcher, what);
          resolve({ kind: 'connected' });
        }
      });
      watcher.on('data', (response: IWatchResponse) => this.onWatchData(watcher, what, response));
      watcher.on('disconnected', (error: Error) => {
        if (settle()) {
          reject(describe(error));
        } else {
          this.onWatchLost(
            watcher,
            what,
            new EtcdResolutionError(
              this.target.keyPrefix,
              describeEtcdFailure(
                error,
                `etcd watch of ${name} (at revision ${String(this.revisionOf(what))})`,
                this.settings,
                this.whereNow(),
              ),
              configKey,
            ),
          );
        }
      });
      // etcd cancelled the watch: its revision was compacted, or the user may not watch here.
      // Always listened to: an unhandled 'error' event would throw.
      watcher.on('error', (error: Error) => {
        const reason = scrub(error.message, this.settings).replace(/^Watcher canceled: ?/, '');
        if (settle()) {
          resolve({
            kind: 'cancelled',
            watcher,
            reason: reason || 'no reason given',
            what: `${name} from revision ${from}`,
          });
        } else {
          this.onWatchCancelled(watcher, reason);
        }
      });
    });
  }

  private onWatchData(watcher: Watcher, what: Watched, response: IWatchResponse): void {
    if (!this.watchers.includes(watcher) || !this.sink) return;
    this.armSilence(watcher, what);
    if (what === 'config') {
      this.onConfigData(response);
      return;
    }
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

  /** A response of the config key's watch: the document changed, or progress. */
  private onConfigData(response: IWatchResponse): void {
    const key = this.target.configKey;
    const events = response.events.filter((e) => e.kv.key.toString('utf8') === key);
    for (const event of events) {
      this.document =
        event.type === 'Put'
          ? { text: event.kv.value.toString('utf8'), modRevision: BigInt(event.kv.mod_revision) }
          : null;
    }
    const last = response.events[response.events.length - 1];
    if (last) {
      this.configRevision = BigInt(last.kv.mod_revision);
      this.scheduleFlush();
    } else if (!response.created) {
      const progress = BigInt(response.header.revision);
      if (this.configRevision === undefined || progress > this.configRevision) {
        this.configRevision = progress;
      }
    }
  }

  private onWatchLost(watcher: Watcher, what: Watched, error: EtcdResolutionError): void {
    if (!this.watchers.includes(watcher) || !this.sink) return;
    if (/\bno leader\b/i.test(error.message)) {
      this.onWatchDead(
        watcher,
        what,
        'lost its leader (etcd cancelled the watch: no leader)',
        error,
      );
      return;
    }
    this.fail(error);
  }

  /** (Re-)arms the silence deadline of one watch: each watch gets its own progress notifications. */
  private armSilence(watcher: Watcher, what: Watched): void {
    const previous = this.silenceTimers.get(watcher);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.silenceTimers.delete(watcher);
      this.onWatchDead(
        watcher,
        what,
        `sent neither an event nor a progress notification for ${this.silenceMs} ms`,
      );
    }, this.silenceMs);
    timer.unref();
    this.silenceTimers.set(watcher, timer);
  }

  private clearSilence(): void {
    for (const timer of this.silenceTimers.values()) clearTimeout(timer);
    this.silenceTimers.clear();
  }

  /**
   * The member behind the watch stopped following the cluster (no leader) or went silent. With
   * another member to go to, resume there at once from the last applied revision (unless this
   * watch was opened less than RELIST_GUARD_MS ago: then it is an error, retried with the
   * channel's backoff, so two bad members never make a loop); otherwise report the error.
   */
  private onWatchDead(watcher: Watcher, watched: Watched, what: string, cause?: unknown): void {
    if (!this.watchers.includes(watcher) || !this.sink) return;
    const from = this.settings.endpoints[this.member];
    const error = new EtcdResolutionError(
      this.target.keyPrefix,
      scrub(
        `etcd watch of ${this.nameOf(watched)} on member ${String(from)} (at revision ${String(this.revisionOf(watched))}) ${what}`,
        this.settings,
      ),
      { cause, ...(watched === 'config' ? { configKey: this.target.configKey } : {}) },
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
    this.dropWatchers();
    this.closeClient();
    this.sync();
  }

  private onWatchCancelled(watcher: Watcher, reason: string): void {
    if (!this.watchers.includes(watcher) || !this.sink) return;
    this.watchers = this.watchers.filter((w) => w !== watcher);
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
    this.dropWatchers();
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
    const note = `${endpoints.length} endpoints under etcd prefix "${this.target.keyPrefix}" at revision ${String(this.revision)}`;
    const key = this.target.configKey;
    const document = this.document;
    if (key === undefined) {
      sink.update({ endpoints, note });
    } else if (document) {
      const source = `etcd key ${key} (revision ${document.modRevision})`;
      sink.update({
        endpoints,
        serviceConfig: document.text,
        serviceConfigSource: source,
        note: `${note}; service config from ${source}`,
      });
    } else {
      sink.update({
        endpoints,
        note: `${note}; service config key "${key}" is absent (at revision ${String(this.configRevision)}): the channel's own service config applies`,
      });
    }
  }
}
