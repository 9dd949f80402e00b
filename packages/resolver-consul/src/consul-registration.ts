import { ConfigError, formatHostPort, parseHostPort, type Logger } from '@grpc-lb/core';
import {
  agentRequest,
  createPool,
  resolveAgentSettings,
  type AgentOptions,
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
  /** Where warnings go (a failed TTL pass). Default `console.warn`. */
  readonly logger?: Logger;
}

export interface ConsulRegistration {
  readonly id: string;
  /** `host:port` registered. */
  readonly address: string;
  /** Stops the TTL timer and removes the instance from the agent (clients stop calling it). */
  deregister(): Promise<void>;
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

async function call(
  settings: AgentSettings,
  id: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  const pool = createPool(settings.agent);
  try {
    const response = await agentRequest(settings, pool, method, path, {
      ...(body !== undefined ? { body } : {}),
      timeoutMs: 10_000,
    });
    if (response.status !== 200) {
      const hint =
        response.status === 403
          ? `: the ACL token ${settings.tokenSource === 'none' ? '(none given)' : `(from ${settings.tokenSource})`} lacks service:write on the service`
          : '';
      throw new ConsulRegistrationError(
        id,
        `${method} ${path.split('?')[0]} at ${settings.agent.url}: HTTP ${response.status}: ${response.body.trim().split('\n')[0]}${hint}`,
        response.status,
      );
    }
  } catch (error) {
    if (error instanceof ConsulRegistrationError) throw error;
    throw new ConsulRegistrationError(
      id,
      `${method} ${path.split('?')[0]} at ${settings.agent.url}: ${(error as Error).message}`,
      undefined,
      { cause: error },
    );
  } finally {
    pool.destroy();
  }
}

/**
 * Registers one instance with the local Consul agent (`PUT /v1/agent/service/register`). With a
 * TTL check the check is passed every ttl/3 on an unref()ed timer until `deregister()`. Rejects
 * with `ConsulRegistrationError` if the agent refuses; throws `ConfigError` for bad options.
 */
export async function registerService(
  options: ConsulRegistrationOptions,
): Promise<ConsulRegistration> {
  const { body, id, address, ttlMs } = registrationBody(options);
  const settings = resolveAgentSettings(undefined, {
    ...(options.address !== undefined ? { address: options.address } : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
  });
  const logger = options.logger ?? defaultLogger;
  await call(settings, id, 'PUT', '/v1/agent/service/register', body);
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let passing: Promise<void> | undefined;
  if (ttlMs !== undefined) {
    const checkPath = `/v1/agent/check/pass/${encodeURIComponent(`service:${id}`)}`;
    timer = setInterval(
      () => {
        if (passing) return;
        passing = call(settings, id, 'PUT', checkPath)
          .catch((error: unknown) => {
            if (!closed)
              logger.warn(`consul: TTL pass for ${id} failed: ${(error as Error).message}`);
          })
          .finally(() => {
            passing = undefined;
          });
      },
      Math.max(100, Math.floor(ttlMs / 3)),
    );
    timer.unref();
  }
  return {
    id,
    address,
    async deregister() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await passing;
      await call(settings, id, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
    },
  };
}
