import { EventEmitter } from 'node:events';
import { Backoff, ConfigError, formatHostPort, parseHostPort, type Logger } from '@grpc-lb/core';
import {
  agentRequest,
  createPool,
  describeRequestError,
  describeTokenSource,
  resolveAgentSettings,
  type AgentOptions,
  type AgentResponse,
  type AgentSettings,
} from './consul-agent';
import { parseGoDuration, toGoDuration } from './duration';
import { ConsulRegistrationError } from './errors';

/** The environment variable holding the pod's IP (Kubernetes downward API), the default host. */
export const POD_IP_ENV = 'POD_IP';

/** A duration: milliseconds, or a Go duration string as Consul writes them (`10s`, `1m`). */
export type Duration = number | string;

export type ConsulCheck =
  /** Consul calls `grpc.health.v1.Health/Check` on `host:port` every `interval` (default 10s). */
  | { readonly grpc: true | { readonly interval?: Duration; readonly timeout?: Duration } }
  /** The instance is passing while this process reports it: `pass` every `ttl`/3. */
  | { readonly ttl: Duration };

export interface ConsulRegistrationOptions extends AgentOptions {
  /** The service name, as in the clients' target `consul:///<name>`. */
  readonly name: string;
  /** The instance ID (default `<name>-<host>-<port>`). */
  readonly id?: string;
  /** The address clients dial (default `$POD_IP`). */
  readonly host?: string;
  readonly port: number;
  readonly tags?: readonly string[];
  /** Becomes the endpoint's labels; `zone` is also its zone. */
  readonly meta?: Readonly<Record<string, string>>;
  /** Consul's weights (default 1 / 1). */
  readonly weights?: { readonly passing: number; readonly warning?: number };
  /** Default: none (the instance counts as passing as long as its node does). */
  readonly check?: ConsulCheck;
  /** Consul removes the instance after its check has been critical this long. */
  readonly deregisterCriticalServiceAfter?: Duration;
  /** Where warnings go (a failed TTL pass, a lost registration). Default `console.warn`. */
  readonly logger?: Logger;
  /**
   * How often the helper asks the agent whether it still knows the instance, and registers it
   * again if not (default 5000 ms, at least 100).
   */
  readonly antiEntropyIntervalMs?: number;
}

const defaultLogger: Logger = {
  warn(message) {
    console.warn(`[grpc-lb] ${message}`);
  },
};

function duration(value: Duration, field: string): string {
  const text = toGoDuration(value);
  if (text === undefined) {
    throw new ConfigError(
      field,
      `expected milliseconds > 0 or a duration like "10s"`,
      'registerService',
    );
  }
  return text;
}

/** The JSON body of `/v1/agent/service/register`; throws `ConfigError` naming the bad option. */
export function registrationBody(
  options: ConsulRegistrationOptions,
  env: NodeJS.ProcessEnv = process.env,
): { body: Record<string, unknown>; id: string; address: string; ttlMs: number | undefined } {
  const context = 'registerService';
  const { name, port } = options;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new ConfigError('name', 'expected a Consul service name, e.g. "hello"', context);
  }
  const host = options.host ?? env[POD_IP_ENV];
  if (host === undefined || host === '') {
    throw new ConfigError('host', `no host given and $${POD_IP_ENV} is not set`, context);
  }
  try {
    parseHostPort(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host, host, 'host');
  } catch {
    throw new ConfigError('host', `"${host}" is not an IP address or host name`, context);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('port', `expected an integer 1-65535, got ${String(port)}`, context);
  }
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const id = options.id ?? `${name}-${bare}-${port}`;
  if (typeof id !== 'string' || id === '' || id.includes('/')) {
    throw new ConfigError('id', 'expected a non-empty string without "/"', context);
  }
  const body: Record<string, unknown> = { ID: id, Name: name, Address: bare, Port: port };
  if (options.tags) body['Tags'] = [...options.tags];
  if (options.meta) body['Meta'] = { ...options.meta };
  if (options.weights) {
    const { passing, warning = 1 } = options.weights;
    for (const [field, value] of [
      ['weights.passing', passing],
      ['weights.warning', warning],
    ] as const) {
      if (!Number.isInteger(value) || value < 0 || value > 1_000_000) {
        throw new ConfigError(field, 'expected an integer 0-1000000', context);
      }
    }
    if (passing < 1)
      throw new ConfigError('weights.passing', 'Consul requires at least 1', context);
    body['Weights'] = { Passing: passing, Warning: warning };
  }
  let ttlMs: number | undefined;
  const check = options.check;
  if (check !== undefined) {
    const definition: Record<string, unknown> = {};
    if ('grpc' in check) {
      const grpc = check.grpc === true ? {} : check.grpc;
      definition['GRPC'] = formatHostPort(bare, port);
      definition['Interval'] = duration(grpc.interval ?? '10s', 'check.grpc.interval');
      if (grpc.timeout !== undefined) {
        definition['Timeout'] = duration(grpc.timeout, 'check.grpc.timeout');
      }
    } else if ('ttl' in check) {
      const ttl = duration(check.ttl, 'check.ttl');
      ttlMs = parseGoDuration(ttl);
      definition['TTL'] = ttl;
      // Usable at once; from then on, passing only while we say so.
      definition['Status'] = 'passing';
    } else {
      throw new ConfigError('check', 'expected { grpc: true } or { ttl: "10s" }', context);
    }
    if (options.deregisterCriticalServiceAfter !== undefined) {
      definition['DeregisterCriticalServiceAfter'] = duration(
        options.deregisterCriticalServiceAfter,
        'deregisterCriticalServiceAfter',
      );
    }
    body['Check'] = definition;
  } else if (options.deregisterCriticalServiceAfter !== undefined) {
    throw new ConfigError('deregisterCriticalServiceAfter', 'needs a check', context);
  }
  return { body, id, address: formatHostPort(bare, port), ttlMs };
}

/** One request to the agent: method, path, JSON body. A seam for tests. */
export type AgentCall = (method: string, path: string, body?: unknown) => Promise<AgentResponse>;

/** Default interval of the check that the agent still knows the instance. */
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 5_000;

export interface ConsulRegistrationEvents {
  /**
   * The agent no longer knows the instance (it restarted with an empty state, as a dev agent or
   * one without a data dir does, or someone deregistered it): registering again follows at once.
   */
  lost: [{ readonly reason: string }];
  /** Registered again after `lost`. */
  registered: [{ readonly id: string }];
  /** A check or a registration failed (the agent unreachable, an error answer); the next follows after `delayMs`. */
  retry: [{ readonly error: ConsulRegistrationError; readonly delayMs: number }];
}

function httpCall(settings: AgentSettings): AgentCall {
  return async (method, path, body) => {
    const pool = createPool(settings);
    try {
      return await agentRequest(settings, pool, method, path, {
        ...(body !== undefined ? { body } : {}),
        timeoutMs: 10_000,
      });
    } finally {
      pool.destroy();
    }
  };
}

/**
 * One instance registered with the local Consul agent. Create it with `registerService()`.
 *
 * The helper keeps it registered: every `antiEntropyIntervalMs` (and at once when a TTL pass is
 * refused) it asks the agent for the instance (`GET /v1/agent/service/<id>`); a 404 means the
 * agent forgot it — a dev agent or one without a data dir restarted — and it is registered again,
 * with a warning and the `lost` / `registered` events. While the agent is unreachable the check is
 * retried after a short growing backoff (250 ms up to 2 s, or the interval if shorter), so a
 * restarted agent has the instance back within about 2 s of answering. Every timer is unref()ed; `deregister()`
 * stops them all.
 */
export class ConsulRegistration extends EventEmitter<ConsulRegistrationEvents> {
  readonly id: string;
  /** `host:port` registered. */
  readonly address: string;
  private readonly body: Record<string, unknown>;
  private readonly ttlMs: number | undefined;
  private readonly settings: AgentSettings;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly request: AgentCall;
  private readonly backoff: Backoff;
  private closed = false;
  private started = false;
  /** The agent said it does not know the instance, and it is not registered again yet. */
  private missing = false;
  /** The last failure warned about (a streak of the same failure is warned about once). */
  private lastFailure: string | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private ttlTimer: NodeJS.Timeout | undefined;
  /** The check, registration or TTL pass in flight (deregister() waits for it). */
  private busy: Promise<void> | undefined;
  private passing: Promise<void> | undefined;

  /** Checks the options; throws `ConfigError`. `registerService()` creates and starts it. */
  constructor(options: ConsulRegistrationOptions, request?: AgentCall) {
    super();
    const { body, id, address, ttlMs } = registrationBody(options);
    this.body = body;
    this.id = id;
    this.address = address;
    this.ttlMs = ttlMs;
    this.settings = resolveAgentSettings(undefined, options);
    this.logger = options.logger ?? defaultLogger;
    const interval = options.antiEntropyIntervalMs ?? DEFAULT_ANTI_ENTROPY_INTERVAL_MS;
    if (typeof interval !== 'number' || !Number.isFinite(interval) || interval < 100) {
      throw new ConfigError(
        'antiEntropyIntervalMs',
        `expected milliseconds >= 100, got ${String(interval)}`,
        'registerService',
      );
    }
    this.intervalMs = interval;
    // While the agent is unreachable: retried often enough to be back within ~2 s of it.
    this.backoff = new Backoff({ initialMs: 250, maxMs: Math.min(interval, 2_000) });
    this.request = request ?? httpCall(this.settings);
  }

  /** Registers once (rejects with `ConsulRegistrationError` if the agent refuses), then keeps it so. */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    await this.register();
    if (this.closed) return;
    if (this.ttlMs !== undefined) {
      this.ttlTimer = setInterval(() => this.pass(), Math.max(100, Math.floor(this.ttlMs / 3)));
      this.ttlTimer.unref();
    }
    this.scheduleCheck(this.intervalMs);
  }

  /** Stops every timer and removes the instance from the agent (clients stop calling it). */
  async deregister(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    if (this.ttlTimer) clearInterval(this.ttlTimer);
    this.checkTimer = undefined;
    this.ttlTimer = undefined;
    await Promise.allSettled([this.busy, this.passing]);
    await this.call('PUT', `/v1/agent/service/deregister/${encodeURIComponent(this.id)}`);
  }

  private async register(): Promise<void> {
    await this.call('PUT', '/v1/agent/service/register', this.body);
  }

  private async call(method: string, path: string, body?: unknown): Promise<AgentResponse> {
    const settings = this.settings;
    const where = `${method} ${path.split('?')[0]} at ${settings.agent.url}`;
    let response: AgentResponse;
    try {
      response = await this.request(method, path, body);
    } catch (error) {
      throw new ConsulRegistrationError(
        this.id,
        `${where}: ${describeRequestError(error, settings)}`,
        undefined,
        {
          cause: error,
        },
      );
    }
    if (response.status !== 200) {
      const hint =
        response.status === 403
          ? `: the ACL token ${settings.tokenSource === 'none' ? '(none given)' : `(from ${describeTokenSource(settings)})`} lacks service:write on the service`
          : '';
      throw new ConsulRegistrationError(
        this.id,
        `${where}: HTTP ${response.status}: ${response.body.trim().split('\n')[0]}${hint}`,
        response.status,
      );
    }
    return response;
  }

  /** Emits to the listeners; one that throws is reported through the logger, never thrown here. */
  private notify<K extends keyof ConsulRegistrationEvents>(
    event: K,
    ...args: ConsulRegistrationEvents[K]
  ): void {
    try {
      (this.emit as (name: K, ...rest: ConsulRegistrationEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.logger.warn(
        `consul: a '${event}' listener of the registration of ${this.id} threw: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private scheduleCheck(delayMs: number): void {
    if (this.closed) return;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      this.checkNow();
    }, delayMs);
    this.checkTimer.unref();
  }

  /** Asks the agent for the instance; registers it again when the agent answers 404. */
  private checkNow(): void {
    if (this.closed || this.busy) return;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    this.busy = this.verify().finally(() => {
      this.busy = undefined;
    });
  }

  private async verify(): Promise<void> {
    let next = this.intervalMs;
    try {
      const response = await this.request(
        'GET',
        `/v1/agent/service/${encodeURIComponent(this.id)}`,
      ).catch((error: unknown) => {
        throw new ConsulRegistrationError(
          this.id,
          `checking the registration at ${this.settings.agent.url}: ${describeRequestError(error, this.settings)}`,
          undefined,
          { cause: error },
        );
      });
      if (this.closed) return;
      if (response.status === 404) {
        const reason = `the agent at ${this.settings.agent.url} no longer knows the instance (restarted without its state, or deregistered by someone else)`;
        if (!this.missing) {
          // Once per loss, however many attempts it takes to register again.
          this.missing = true;
          this.logger.warn(`consul: ${this.id}: ${reason}; registering it again`);
          this.notify('lost', { reason });
        }
        await this.register();
        if (this.closed) return;
        this.missing = false;
        this.logger.warn(`consul: ${this.id}: registered again`);
        this.notify('registered', { id: this.id });
        // A TTL check is registered passing again (its Status), so the instance is usable at once.
      } else if (response.status !== 200) {
        throw new ConsulRegistrationError(
          this.id,
          `checking the registration at ${this.settings.agent.url}: HTTP ${response.status}: ${response.body.trim().split('\n')[0]}`,
          response.status,
        );
      }
      this.backoff.reset();
      this.lastFailure = undefined;
    } catch (error) {
      if (this.closed) return;
      const failure =
        error instanceof ConsulRegistrationError
          ? error
          : new ConsulRegistrationError(this.id, String(error), undefined);
      // The agent unreachable: retried within ~2 s, to be back soon after it. The agent answering
      // with an error (a 403, a 500): nothing changes faster than the interval.
      const delay = this.backoff.next();
      next = failure.status === undefined ? delay : Math.max(delay, this.intervalMs);
      if (failure.message !== this.lastFailure) {
        this.lastFailure = failure.message;
        this.logger.warn(`consul: keeping ${this.id} registered: ${failure.message}`);
      }
      this.notify('retry', { error: failure, delayMs: next });
    } finally {
      this.scheduleCheck(next);
    }
  }

  /** The TTL pass; a refused one (the agent forgot the check) triggers the check at once. */
  private pass(): void {
    if (this.passing || this.closed) return;
    const path = `/v1/agent/check/pass/${encodeURIComponent(`service:${this.id}`)}`;
    this.passing = this.call('PUT', path)
      .then(() => undefined)
      .catch((error: unknown) => {
        if (this.closed) return;
        this.logger.warn(`consul: TTL pass for ${this.id} failed: ${(error as Error).message}`);
        const status = (error as ConsulRegistrationError).status;
        if (status !== undefined && status !== 403) this.checkNow();
      })
      .finally(() => {
        this.passing = undefined;
      });
  }
}

/**
 * Registers one instance with the local Consul agent (`PUT /v1/agent/service/register`) and keeps
 * it registered (see `ConsulRegistration`). With a TTL check the check is passed every ttl/3 on an
 * unref()ed timer until `deregister()`. Rejects with `ConsulRegistrationError` if the agent refuses
 * the first registration; throws `ConfigError` for bad options.
 */
export async function registerService(
  options: ConsulRegistrationOptions,
): Promise<ConsulRegistration> {
  const registration = new ConsulRegistration(options);
  await registration.start();
  return registration;
}
