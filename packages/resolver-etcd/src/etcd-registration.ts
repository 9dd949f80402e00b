import { EventEmitter } from 'node:events';
import { Backoff, ConfigError, formatHostPort, parseHostPort, type Logger } from '@grpc-lb/core';
import type { Etcd3, IWatchResponse, Lease, Watcher } from 'etcd3';
import { formatEndpointValue, metadataOf, type EndpointMetadata } from './endpoint-value';
import { createEtcdClient, describeEtcdFailure } from './etcd-client';
import {
  describeConnection,
  resolveConnection,
  type EtcdConnectionOptions,
  type EtcdConnectionSettings,
} from './etcd-options';
import { keyPrefixOf } from './etcd-target';
import { EtcdRegistrationError } from './errors';

export const DEFAULT_TTL_SECONDS = 10;
/** The environment variable holding the pod's IP (Kubernetes downward API), the default host. */
export const POD_IP_ENV = 'POD_IP';
const DEFAULT_START_TIMEOUT_MS = 30_000;
/** The etcd client pauses 5 s after 3 failed calls in a row: a delete is retried past that. */
const DELETE_RETRY_WINDOW_MS = 7_000;
const DELETE_RETRY_MS = 250;

export interface EtcdRegistrationOptions extends EtcdConnectionOptions, EndpointMetadata {
  /** The service, as in the clients' target `etcd:///<service>`: `services/hello`. */
  readonly service: string;
  /** The port the server listens on. */
  readonly port: number;
  /** The address clients dial (default: `$POD_IP`). */
  readonly host?: string;
  /** The last part of the key, `<service>/<id>` (default: `host:port`). */
  readonly id?: string;
  /** Lease time to live in seconds (default 10): how long a crashed server stays registered. */
  readonly ttlSeconds?: number;
  /**
   * `Metadata` written as is instead of `{labels, weight, zone}` — the shape your Go services
   * already use. Give one or the other.
   */
  readonly metadata?: unknown;
  /**
   * `etcd-naming` (default): etcd's Go naming JSON `{"Op":0,"Addr":…,"Metadata":…}`, read by
   * etcd's Go resolver and by ours. `plain`: just `host:port` (go-zero's layout; no metadata).
   */
  readonly format?: 'etcd-naming' | 'plain';
  /** How long `registerEndpoint()` keeps trying before it rejects (default 30000 ms). */
  readonly startTimeoutMs?: number;
  /** Where warnings go (a lost lease, a deleted key, a failed retry). Default `console.warn`. */
  readonly logger?: Logger;
  /**
   * Called when the lease is lost (also the `lost` event), before registering again. An error
   * it throws is reported through the logger.
   */
  readonly onLost?: (error: Error) => void;
}

export interface EtcdRegistrationEvents {
  /** The key was written under a new lease (first time, and after each lost lease). */
  registered: [{ key: string; leaseId: string }];
  /**
   * The lease was lost: revoked, or no keepalive answered for a whole TTL (so etcd has expired it
   * or is about to). Registering again under a new lease follows at once.
   */
  lost: [Error];
  /** Someone else deleted the key; it has just been written again under the same lease. */
  restored: [{ key: string; leaseId: string }];
  /** An attempt to register failed; another follows after a backoff. */
  retry: [{ error: EtcdRegistrationError; delayMs: number }];
}

const defaultLogger: Logger = {
  warn(message) {
    console.warn(`[grpc-lb] ${message}`);
  },
};

/**
 * One endpoint registered under a lease with keepalive. Create it with `registerEndpoint()`.
 * If the lease is lost (etcd was unreachable for longer than the TTL, or the lease was revoked)
 * the key is written again under a new lease, with backoff, until `deregister()`. The lease
 * counts as lost as soon as no keepalive has been answered for a whole TTL (the etcd client
 * alone would wait for two). The helper watches its own key: if someone else deletes it, it is
 * written again at once (to take a server out of rotation, call `deregister()`).
 */
export class EtcdRegistration extends EventEmitter<EtcdRegistrationEvents> {
  /** `<service>/<id>`. */
  readonly key: string;
  /** The value written. */
  readonly value: string;
  /** `host:port` registered. */
  readonly address: string;
  private readonly settings: EtcdConnectionSettings;
  private readonly where: string;
  private readonly ttlSeconds: number;
  private readonly logger: Logger;
  private readonly backoff = new Backoff({ initialMs: 250, maxMs: 10_000 });
  private client: Etcd3 | undefined;
  private lease: Lease | undefined;
  private leaseIdValue: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Fires when no keepalive has been answered for a whole TTL. */
  private keepaliveTimer: NodeJS.Timeout | undefined;
  /** Watches our own key, to write it again when someone else deletes it. */
  private keyWatcher: Watcher | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private readonly repairBackoff = new Backoff({ initialMs: 250, maxMs: 10_000 });
  private readonly onLostCallback: ((error: Error) => void) | undefined;
  private closed = false;
  private attempt: Promise<void> | undefined;

  /** Checks the options; throws `ConfigError`. Use `registerEndpoint()` to start it. */
  constructor(
    options: EtcdRegistrationOptions,
    private readonly createClient: (settings: EtcdConnectionSettings) => Etcd3 = createEtcdClient,
  ) {
    super();
    const context = 'registerEndpoint';
    this.settings = resolveConnection(options, context);
    this.where = describeConnection(this.settings);
    const { service, port, ttlSeconds = DEFAULT_TTL_SECONDS, format = 'etcd-naming' } = options;
    if (typeof service !== 'string' || service.replace(/\//g, '') === '') {
      throw new ConfigError(
        'service',
        'expected the service prefix, e.g. "services/hello"',
        context,
      );
    }
    const host = options.host ?? process.env[POD_IP_ENV];
    if (host === undefined || host === '') {
      throw new ConfigError('host', `no host given and $${POD_IP_ENV} is not set`, context);
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError('port', `expected an integer 1-65535, got ${String(port)}`, context);
    }
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    try {
      parseHostPort(bare.includes(':') ? `[${bare}]` : bare, bare, 'host');
    } catch {
      throw new ConfigError('host', `"${host}" is not an IP address or host name`, context);
    }
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 9_000_000_000) {
      throw new ConfigError('ttlSeconds', `expected a whole number of seconds ≥ 1`, context);
    }
    if (options.id !== undefined && (typeof options.id !== 'string' || options.id === '')) {
      throw new ConfigError('id', 'expected a non-empty string', context);
    }
    const fromFields = metadataOf(options);
    if (options.metadata !== undefined && fromFields !== null) {
      throw new ConfigError('metadata', 'give metadata or labels/weight/zone, not both', context);
    }
    if (
      options.weight !== undefined &&
      (!Number.isInteger(options.weight) || options.weight < 0 || options.weight > 1_000_000)
    ) {
      throw new ConfigError('weight', 'expected an integer 0-1000000', context);
    }
    if (format !== 'etcd-naming' && format !== 'plain') {
      throw new ConfigError('format', 'expected "etcd-naming" or "plain"', context);
    }
    this.address = formatHostPort(bare, port);
    this.key = `${keyPrefixOf(service)}${options.id ?? this.address}`;
    this.value =
      format === 'plain'
        ? this.address
        : formatEndpointValue(bare, port, options.metadata ?? fromFields);
    this.ttlSeconds = ttlSeconds;
    this.logger = options.logger ?? defaultLogger;
    this.onLostCallback = options.onLost;
  }

  /** Emits to the listeners; one that throws is reported through the logger, never thrown here. */
  private notify<K extends keyof EtcdRegistrationEvents>(
    event: K,
    ...args: EtcdRegistrationEvents[K]
  ): void {
    try {
      (this.emit as (name: K, ...rest: EtcdRegistrationEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.logger.warn(
        `a '${event}' listener of the etcd registration of ${this.key} threw: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  /** The current lease's ID (decimal), or undefined while not registered. */
  get leaseId(): string | undefined {
    return this.leaseIdValue;
  }

  /** Whether the key is written under a live lease, as far as we know. */
  get registered(): boolean {
    return this.leaseIdValue !== undefined;
  }

  /** Registers, retrying with backoff; rejects with `EtcdRegistrationError` after `timeoutMs`. */
  async start(timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: EtcdRegistrationError | undefined;
    while (!this.closed) {
      try {
        await this.registerOnce();
        return;
      } catch (error) {
        lastError = this.asError(error, 'register');
      }
      const delay = this.backoff.next();
      if (Date.now() + delay >= deadline) break;
      this.notify('retry', { error: lastError, delayMs: delay });
      // Not unref()'d: the caller is waiting for this, so the process must not exit meanwhile.
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    await this.deregister().catch(() => undefined);
    throw new EtcdRegistrationError(
      this.key,
      `could not register ${this.key} within ${timeoutMs} ms: ${lastError?.message ?? 'deregistered meanwhile'}`,
    );
  }

  /**
   * Deletes the key (so clients stop calling this server before it shuts down), revokes the
   * lease and closes the connection to etcd. Rejects with `EtcdRegistrationError` if the key
   * could not be deleted (it then disappears when its lease expires, after at most the TTL).
   */
  async deregister(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.repairTimer) clearTimeout(this.repairTimer);
    this.repairTimer = undefined;
    this.stopKeepaliveWatch();
    this.stopKeyWatch();
    await this.attempt?.catch(() => undefined);
    this.stopKeepaliveWatch();
    this.stopKeyWatch();
    const client = this.client;
    const lease = this.lease;
    this.lease = undefined;
    this.leaseIdValue = undefined;
    this.client = undefined;
    if (!client) return;
    lease?.release();
    try {
      await this.deleteKey(client);
    } catch (error) {
      throw this.asError(error, 'delete');
    } finally {
      await lease?.revoke().catch(() => undefined);
      client.close();
    }
  }

  /**
   * Deletes the key. Right after an outage the etcd client may still refuse calls for a few
   * seconds (its circuit breaker opens after repeated failures and lets a call through only after
   * a pause): a refused or unreachable delete is tried again until one timeout has passed.
   */
  private async deleteKey(client: Etcd3): Promise<void> {
    const deadline = Date.now() + Math.max(this.settings.timeoutMs, DELETE_RETRY_WINDOW_MS);
    for (;;) {
      try {
        await client.delete().key(this.key).exec();
        return;
      } catch (error) {
        const name = error instanceof Error ? error.constructor.name : '';
        const transient = name === 'BrokenCircuitError' || name === 'GRPCUnavailableError';
        if (!transient || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, DELETE_RETRY_MS));
      }
    }
  }

  private asError(error: unknown, action: 'register' | 'delete'): EtcdRegistrationError {
    if (error instanceof EtcdRegistrationError) return error;
    const what =
      action === 'register' ? `etcd registration of ${this.key}` : `etcd delete of ${this.key}`;
    return new EtcdRegistrationError(
      this.key,
      describeEtcdFailure(error, what, this.settings, this.where),
    );
  }

  /** Grants a lease, writes the key under it, and keeps it alive. */
  private registerOnce(): Promise<void> {
    const attempt = this.doRegister();
    this.attempt = attempt;
    return attempt;
  }

  private async doRegister(): Promise<void> {
    this.client ??= this.createClient(this.settings);
    const client = this.client;
    const lease = client.lease(this.ttlSeconds);
    lease.on('lost', (error) => this.onLost(lease, error));
    lease.on('keepaliveSucceeded', () => {
      if (lease === this.lease) this.armKeepaliveWatch(lease);
    });
    try {
      const put = await lease.put(this.key).value(this.value).exec();
      const id = await lease.grant();
      if (this.closed) throw new Error('deregistered');
      const previous = this.lease;
      this.lease = lease;
      this.leaseIdValue = id;
      this.backoff.reset();
      this.armKeepaliveWatch(lease);
      this.watchKey(client, BigInt(put.header.revision) + 1n);
      // A lease we gave up on may still be alive in etcd: our key now belongs to the new one.
      previous?.revoke().catch(() => undefined);
      this.notify('registered', { key: this.key, leaseId: id });
    } catch (error) {
      lease.revoke().catch(() => undefined);
      if (this.client === client) {
        // A fresh client next time: new connections and auth token.
        this.client = undefined;
        client.close();
      }
      throw error;
    }
  }

  private onLost(lease: Lease, error: Error): void {
    if (lease !== this.lease || this.closed) return;
    this.lease = undefined;
    this.leaseIdValue = undefined;
    this.stopKeepaliveWatch();
    this.stopKeyWatch();
    if (this.repairTimer) clearTimeout(this.repairTimer);
    this.repairTimer = undefined;
    // Stops its keepalives; if etcd still has it, revoking frees it now rather than after its TTL.
    lease.revoke().catch(() => undefined);
    this.logger.warn(
      `etcd lease of ${this.key} lost (${error.message}); registering again at ${this.where}`,
    );
    if (this.onLostCallback) {
      try {
        this.onLostCallback(error);
      } catch (thrown) {
        this.logger.warn(
          `the onLost callback of the etcd registration of ${this.key} threw: ${thrown instanceof Error ? thrown.message : String(thrown)}`,
        );
      }
    }
    this.notify('lost', error);
    this.retry(0);
  }

  /** (Re)starts the wait for the next answered keepalive: a whole TTL without one = lost. */
  private armKeepaliveWatch(lease: Lease): void {
    this.stopKeepaliveWatch();
    const ttlMs = this.ttlSeconds * 1000;
    this.keepaliveTimer = setTimeout(() => {
      this.keepaliveTimer = undefined;
      this.onLost(
        lease,
        new Error(`no keepalive answered for ${ttlMs} ms (the lease's TTL), so etcd expires it`),
      );
    }, ttlMs);
    this.keepaliveTimer.unref();
  }

  private stopKeepaliveWatch(): void {
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** Watches our key from `from`; a deletion by anyone but us is repaired. */
  private watchKey(client: Etcd3, from: bigint): void {
    this.stopKeyWatch();
    const watcher = client.watch().key(this.key).startRevision(from.toString()).watcher();
    this.keyWatcher = watcher;
    // Accepted by etcd (a member without a leader refuses it): the key can be watched again.
    watcher.on('connected', () => {
      if (watcher === this.keyWatcher) this.repairBackoff.reset();
    });
    watcher.on('data', (response: IWatchResponse) => {
      if (watcher !== this.keyWatcher) return;
      const last = response.events[response.events.length - 1];
      if (last?.type === 'Delete') this.repair(client, 'deleted');
    });
    // etcd cancelled the watch (its revision was compacted): check the key, then watch again.
    watcher.on('error', () => {
      if (watcher === this.keyWatcher) this.repair(client, 'check');
    });
    // A broken stream (etcd down, or a member without a leader refusing it): rather than let the
    // etcd client reopen it every 100 ms, drop it and check the key again after a backoff.
    watcher.on('disconnected', () => {
      if (watcher !== this.keyWatcher) return;
      this.stopKeyWatch();
      this.scheduleCheck(client);
    });
  }

  /** Checks the key (and watches it again) after the repair backoff; an unref()'d timer. */
  private scheduleCheck(client: Etcd3): void {
    if (this.closed || this.repairTimer) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      this.repair(client, 'check');
    }, this.repairBackoff.next());
    this.repairTimer.unref();
  }

  private stopKeyWatch(): void {
    const watcher = this.keyWatcher;
    this.keyWatcher = undefined;
    if (!watcher) return;
    try {
      watcher.cancel().catch(() => undefined);
    } catch {
      // The stream may already be gone, which is what we wanted.
    }
  }

  /**
   * Writes the key again under the current lease: after someone deleted it (`deleted`), or when
   * the watch was cancelled and the key may be gone (`check`, which writes only a missing key).
   * A lease etcd no longer knows makes the put fail and the lease count as lost.
   */
  private repair(client: Etcd3, why: 'deleted' | 'check'): void {
    const lease = this.lease;
    const leaseId = this.leaseIdValue;
    if (this.closed || !lease || leaseId === undefined || this.repairTimer) return;
    if (client !== this.client) return;
    if (why === 'deleted') {
      this.logger.warn(
        `etcd key ${this.key} was deleted by someone else; writing it again under lease ${leaseId} (call deregister() to take the server out)`,
      );
    }
    this.stopKeyWatch();
    const attempt = async (): Promise<void> => {
      if (why === 'check') {
        const found = await client.get(this.key).exec();
        const kv = found.kvs[0];
        if (kv && kv.value.toString('utf8') === this.value && kv.lease === leaseId) {
          return this.watchKeyIfCurrent(client, lease, BigInt(found.header.revision) + 1n);
        }
        this.logger.warn(
          `etcd key ${this.key} was ${kv ? 'changed' : 'deleted'} while it was not watched; writing it again under lease ${leaseId}`,
        );
      }
      const put = await lease.put(this.key).value(this.value).exec();
      this.watchKeyIfCurrent(client, lease, BigInt(put.header.revision) + 1n);
      this.notify('restored', { key: this.key, leaseId });
    };
    attempt().catch((error: unknown) => {
      if (this.closed || lease !== this.lease) return;
      if (this.repairBackoff.failures === 0) {
        this.logger.warn(`${this.asError(error, 'register').message}; retrying`);
      }
      this.scheduleCheck(client);
    });
  }

  private watchKeyIfCurrent(client: Etcd3, lease: Lease, from: bigint): void {
    if (this.closed || lease !== this.lease || client !== this.client) return;
    this.watchKey(client, from);
  }

  private retry(delayMs: number): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.registerOnce().catch((error: unknown) => {
        if (this.closed) return;
        const failure = this.asError(error, 'register');
        const delay = this.backoff.next();
        if (this.backoff.failures === 1) this.logger.warn(`${failure.message}; retrying`);
        this.notify('retry', { error: failure, delayMs: delay });
        this.retry(delay);
      });
    }, delayMs);
    this.retryTimer.unref();
  }
}

/**
 * Registers `host:port` under `<service>/<id>` with a lease kept alive, and resolves once the key
 * is written (retrying meanwhile, up to `startTimeoutMs`). Call `deregister()` before the server
 * stops accepting calls — on SIGTERM — so clients drain first.
 *
 *     const registration = await registerEndpoint({ service: 'services/hello', port: 50051,
 *       labels: { version: 'v2' } });
 *     process.once('SIGTERM', async () => { await registration.deregister(); server.tryShutdown(...) });
 */
export async function registerEndpoint(
  options: EtcdRegistrationOptions,
): Promise<EtcdRegistration> {
  const registration = new EtcdRegistration(options);
  await registration.start(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  return registration;
}
