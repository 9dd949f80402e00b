import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { EtcdConnectionSettings } from '../etcd-options';

/**
 * An in-memory etcd cluster for unit tests of the resolver: one key space with a revision
 * history, and members that can be cut off from the quorum (their watches stop receiving events,
 * as a member without a leader would) or made to cancel their watches with "no leader". Only the
 * parts of etcd3's client the resolver uses are here.
 */
export class FakeEtcd {
  private revision = 1n;
  private readonly log: FakeEvent[] = [];
  private readonly isolated = new Set<string>();
  /** Every client created, in order. */
  readonly clients: FakeEtcdClient[] = [];
  /** When set, list requests to these members fail with this message. */
  readonly failingLists = new Map<string, string>();
  /** When set, single-key reads of these keys fail with this error (or message). */
  readonly failingGets = new Map<string, Error | string>();
  /** Watches are answered ('connected') at once unless this is false. */
  autoConnect = true;

  /** For `EtcdResolverEnvironment.createClient`. */
  readonly createClient = (settings: EtcdConnectionSettings): Etcd3 => {
    const client = new FakeEtcdClient(this, settings);
    this.clients.push(client);
    return client as unknown as Etcd3;
  };

  get currentRevision(): bigint {
    return this.revision;
  }

  put(key: string, value: string): void {
    this.record({ type: 'Put', key, value, modRevision: ++this.revision });
  }

  delete(key: string): void {
    if (this.get(key) === undefined) return;
    this.record({ type: 'Delete', key, value: '', modRevision: ++this.revision });
  }

  get(key: string, atRevision = this.revision): string | undefined {
    let value: string | undefined;
    for (const event of this.log) {
      if (event.modRevision > atRevision) break;
      if (event.key === key) value = event.type === 'Put' ? event.value : undefined;
    }
    return value;
  }

  /** Cut `member` off: its watches receive nothing more (they stay open, silent and stale). */
  isolate(member: string): void {
    this.isolated.add(member);
  }

  /** `member` cancels its open watches as etcd does for streams requiring a leader. */
  cancelForNoLeader(member: string): void {
    for (const watcher of this.watchersOn(member)) {
      watcher.emit('disconnected', new Error('14 UNAVAILABLE: etcdserver: no leader'));
    }
  }

  /** Sends a progress notification (no events, the current revision) on every open watch. */
  progress(): void {
    for (const client of this.clients) {
      for (const watcher of client.watchers) {
        if (watcher.connected && !this.isolated.has(client.member)) {
          watcher.emit('data', response(this.revision, []));
        }
      }
    }
  }

  /** Open (connected, not cancelled) watches on clients of `member` that are not closed. */
  watchersOn(member: string): FakeWatcher[] {
    return this.clients
      .filter((c) => c.member === member && !c.closed)
      .flatMap((c) => c.watchers.filter((w) => w.connected));
  }

  /** @internal */
  keysIn(
    start: string,
    end: string,
    atRevision: bigint,
  ): { key: string; value: string; mod: bigint }[] {
    const keys = new Map<string, { key: string; value: string; mod: bigint }>();
    for (const event of this.log) {
      if (event.modRevision > atRevision) break;
      if (event.key < start || event.key >= end) continue;
      if (event.type === 'Put') {
        keys.set(event.key, { key: event.key, value: event.value, mod: event.modRevision });
      } else {
        keys.delete(event.key);
      }
    }
    return [...keys.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** @internal */
  history(from: bigint, matches: (key: string) => boolean): FakeEvent[] {
    return this.log.filter((e) => e.modRevision >= from && matches(e.key));
  }

  /** @internal */
  isIsolated(member: string): boolean {
    return this.isolated.has(member);
  }

  private record(event: FakeEvent): void {
    this.log.push(event);
    for (const client of this.clients) {
      if (client.closed || this.isolated.has(client.member)) continue;
      for (const watcher of client.watchers) watcher.deliver(event);
    }
  }
}

interface FakeEvent {
  readonly type: 'Put' | 'Delete';
  readonly key: string;
  readonly value: string;
  readonly modRevision: bigint;
}

function response(revision: bigint, events: FakeEvent[]): unknown {
  return {
    header: { revision: revision.toString() },
    events: events.map((e) => ({
      type: e.type,
      kv: {
        key: Buffer.from(e.key),
        value: Buffer.from(e.value),
        mod_revision: e.modRevision.toString(),
      },
    })),
  };
}

export class FakeWatcher extends EventEmitter {
  connected = false;
  cancelled = false;
  /** The next revision to deliver. */
  private next: bigint;

  constructor(
    private readonly etcd: FakeEtcd,
    private readonly client: FakeEtcdClient,
    /** The key or prefix watched. */
    readonly prefix: string,
    startRevision: bigint,
    /** Only this key (`watch().key()`), not the keys under it. */
    readonly exact = false,
  ) {
    super();
    this.next = startRevision;
  }

  /** Answers the watch: 'connected', then the history from the start revision. */
  connect(): void {
    if (this.cancelled || this.client.closed || this.connected) return;
    this.connected = true;
    this.emit('connected', { header: { revision: this.etcd.currentRevision.toString() } });
    if (this.etcd.isIsolated(this.client.member)) return;
    const missed = this.etcd.history(this.next, (key) => this.matches(key));
    const last = missed[missed.length - 1];
    if (last) {
      this.next = last.modRevision + 1n;
      this.emit('data', response(this.etcd.currentRevision, missed));
    }
  }

  matches(key: string): boolean {
    return this.exact ? key === this.prefix : key.startsWith(this.prefix);
  }

  /** @internal */
  deliver(event: FakeEvent): void {
    if (!this.connected || this.cancelled || !this.matches(event.key)) return;
    if (event.modRevision < this.next) return;
    this.next = event.modRevision + 1n;
    this.emit('data', response(event.modRevision, [event]));
  }

  cancel(): Promise<void> {
    this.cancelled = true;
    this.connected = false;
    return Promise.resolve();
  }
}

export class FakeEtcdClient {
  closed = false;
  readonly watchers: FakeWatcher[] = [];
  /** The member this client talks to (the first of its endpoints). */
  readonly member: string;

  constructor(
    private readonly etcd: FakeEtcd,
    readonly settings: EtcdConnectionSettings,
  ) {
    this.member = settings.endpoints[0]!;
  }

  close(): void {
    this.closed = true;
    for (const watcher of this.watchers) void watcher.cancel();
  }

  getAll(): unknown {
    const etcd = this.etcd;
    const member = this.member;
    let start = '';
    let end = '\uffff';
    let limit = Infinity;
    let at: bigint | undefined;
    const builder = {
      inRange(range: { start: Buffer; end: Buffer }) {
        start = range.start.toString('utf8');
        end = range.end.toString('utf8');
        return builder;
      },
      limit(count: number) {
        limit = count;
        return builder;
      },
      revision(revision: string) {
        at = BigInt(revision);
        return builder;
      },
      exec: () => {
        if (this.closed) return Promise.reject(new Error('the client was closed'));
        const failure = etcd.failingLists.get(member);
        if (failure !== undefined) return Promise.reject(new Error(failure));
        const revision = at ?? etcd.currentRevision;
        const all = etcd.keysIn(start, end, revision);
        const page = all.slice(0, limit);
        return Promise.resolve({
          header: { revision: revision.toString() },
          more: all.length > page.length,
          kvs: page.map((k) => ({
            key: Buffer.from(k.key),
            value: Buffer.from(k.value),
            mod_revision: k.mod.toString(),
          })),
        });
      },
    };
    return builder;
  }

  get(key: string): unknown {
    const etcd = this.etcd;
    let at: bigint | undefined;
    const builder = {
      revision(revision: string) {
        at = BigInt(revision);
        return builder;
      },
      exec: () => {
        if (this.closed) return Promise.reject(new Error('the client was closed'));
        const failure = etcd.failingGets.get(key);
        if (failure !== undefined) {
          return Promise.reject(failure instanceof Error ? failure : new Error(failure));
        }
        const revision = at ?? etcd.currentRevision;
        const found = etcd.keysIn(key, `${key}\0`, revision);
        return Promise.resolve({
          header: { revision: revision.toString() },
          more: false,
          kvs: found.map((k) => ({
            key: Buffer.from(k.key),
            value: Buffer.from(k.value),
            mod_revision: k.mod.toString(),
          })),
        });
      },
    };
    return builder;
  }

  watch(): unknown {
    let prefix = '';
    let exact = false;
    let start = 0n;
    const builder = {
      prefix: (value: string) => {
        prefix = value;
        return builder;
      },
      key: (value: string) => {
        prefix = value;
        exact = true;
        return builder;
      },
      startRevision: (revision: string) => {
        start = BigInt(revision);
        return builder;
      },
      watcher: () => {
        const watcher = new FakeWatcher(this.etcd, this, prefix, start, exact);
        this.watchers.push(watcher);
        if (this.etcd.autoConnect) setImmediate(() => watcher.connect());
        return watcher;
      },
    };
    return builder;
  }
}
