import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';

/**
 * A fake etcd3 client for unit tests of the registration helper: leases the test controls (answer
 * a keepalive, revoke), puts recorded, and watches of single keys the test feeds. Only what the
 * helper uses is here.
 */
export class FakeLeaseEtcd {
  revision = 1n;
  private nextLease = 100;
  readonly leases: FakeLease[] = [];
  readonly puts: { key: string; value: string; leaseId: string }[] = [];
  readonly watchers: FakeKeyWatcher[] = [];
  readonly store = new Map<string, { value: string; lease: string }>();
  clientsMade = 0;
  clientsClosed = 0;
  /** When set, puts fail with this error. */
  failPuts: Error | undefined;

  readonly createClient = (): Etcd3 => {
    this.clientsMade++;
    return this.client() as Etcd3;
  };

  /** Someone else deletes `key`: the watches of it see a Delete. */
  deleteByOther(key: string): void {
    this.store.delete(key);
    const revision = ++this.revision;
    for (const watcher of this.watchers) {
      if (!watcher.cancelled && watcher.key === key) {
        watcher.emit('data', {
          header: { revision: revision.toString() },
          events: [{ type: 'Delete', kv: { key: Buffer.from(key), mod_revision: `${revision}` } }],
        });
      }
    }
  }

  private client(): unknown {
    return {
      lease: (ttl: number) => {
        const etcd = this.self();
        const lease = new FakeLease(etcd, String(etcd.nextLease++), ttl);
        etcd.leases.push(lease);
        return lease;
      },
      watch: () => {
        const etcd = this.self();
        let key = '';
        const builder = {
          key(k: string) {
            key = k;
            return builder;
          },
          startRevision() {
            return builder;
          },
          watcher() {
            const watcher = new FakeKeyWatcher(key);
            etcd.watchers.push(watcher);
            return watcher;
          },
        };
        return builder;
      },
      get: (key: string) => {
        const etcd = this.self();
        return {
          exec: () => {
            const found = etcd.store.get(key);
            return Promise.resolve({
              header: { revision: etcd.revision.toString() },
              kvs: found
                ? [{ key: Buffer.from(key), value: Buffer.from(found.value), lease: found.lease }]
                : [],
            });
          },
        };
      },
      delete: () => {
        const etcd = this.self();
        return {
          key: (key: string) => ({
            exec: () => {
              etcd.store.delete(key);
              return Promise.resolve({});
            },
          }),
        };
      },
      close: () => {
        this.clientsClosed++;
      },
    };
  }

  private self(): FakeLeaseEtcd {
    return this;
  }

  /** @internal */
  put(key: string, value: string, leaseId: string): Promise<unknown> {
    if (this.failPuts) return Promise.reject(this.failPuts);
    this.store.set(key, { value, lease: leaseId });
    this.puts.push({ key, value, leaseId });
    return Promise.resolve({ header: { revision: (++this.revision).toString() } });
  }
}

export class FakeLease extends EventEmitter {
  revoked = false;
  released = false;

  constructor(
    private readonly etcd: FakeLeaseEtcd,
    readonly id: string,
    readonly ttl: number,
  ) {
    super();
  }

  grant(): Promise<string> {
    return Promise.resolve(this.id);
  }

  put(key: string): unknown {
    return {
      value: (value: string) => ({
        exec: () => this.etcd.put(key, value, this.id),
      }),
    };
  }

  /** A keepalive answered by etcd. */
  answerKeepalive(): void {
    this.emit('keepaliveSucceeded', { ID: this.id, TTL: String(this.ttl) });
  }

  revoke(): Promise<void> {
    this.revoked = true;
    return Promise.resolve();
  }

  release(): void {
    this.released = true;
  }
}

export class FakeKeyWatcher extends EventEmitter {
  cancelled = false;
  constructor(readonly key: string) {
    super();
  }
  cancel(): Promise<void> {
    this.cancelled = true;
    return Promise.resolve();
  }
}
