import { readFileSync } from 'node:fs';
import { ConfigError, parseHostPort, TargetError } from '@grpc-lb/core';
import { DEFAULT_ETCD_PORT } from './etcd-target';

/** Where etcd is and how to talk to it; shared by the resolver factory and the registration helper. */
export interface EtcdConnectionOptions {
  /**
   * etcd members: `host:port`, `http://host:port` or `https://host:port`, as an array or a
   * comma-separated string. Default: the `ETCD_ENDPOINTS` environment variable, else
   * `127.0.0.1:2379`. (A target's authority, `etcd://h1:2379,h2:2379/…`, beats both.)
   */
  readonly endpoints?: string | readonly string[];
  /**
   * TLS to etcd. `true`: the system's CAs. An object: PEM contents (`ca`, `cert`, `key`) or file
   * paths (`caFile`, `certFile`, `keyFile`), and `serverName` when the certificate is not issued
   * for the address dialled. `https://` endpoints turn TLS on by themselves.
   */
  readonly tls?: boolean | EtcdTlsOptions;
  /** etcd user and password (`etcdctl user add`). The password never appears in logs or errors. */
  readonly auth?: EtcdAuthOptions;
  /**
   * Deadline of each call to etcd (a page of a list, a put, a lease grant) and of establishing a
   * watch, in milliseconds (default 5000).
   */
  readonly timeoutMs?: number;
}

export interface EtcdTlsOptions {
  readonly ca?: string | Buffer;
  readonly caFile?: string;
  readonly cert?: string | Buffer;
  readonly certFile?: string;
  readonly key?: string | Buffer;
  readonly keyFile?: string;
  /** The name to verify in etcd's certificate instead of the dialled host. */
  readonly serverName?: string;
}

export interface EtcdAuthOptions {
  readonly username: string;
  readonly password: string;
}

export const DEFAULT_ETCD_ENDPOINT = `127.0.0.1:${DEFAULT_ETCD_PORT}`;
export const DEFAULT_TIMEOUT_MS = 5_000;
/** The environment variable holding etcd endpoints when no option names them. */
export const ETCD_ENDPOINTS_ENV = 'ETCD_ENDPOINTS';

/** Connection options checked and resolved: what an etcd client is built from. */
export interface EtcdConnectionSettings {
  /** `host:port` of each member (IPv6 in brackets). */
  readonly endpoints: readonly string[];
  readonly secure: boolean;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly serverName: string | undefined;
  readonly auth: EtcdAuthOptions | undefined;
  readonly timeoutMs: number;
}

const MAX_TIMEOUT_MS = 600_000;

function splitEndpoints(value: string | readonly string[]): string[] {
  const list = typeof value === 'string' ? value.split(',') : [...value];
  return list.map((s) => s.trim()).filter((s) => s !== '');
}

/** `http://h:p` / `https://h:p` / `h:p` / `h` → `{ address: 'h:p', scheme }`. */
function parseEndpoint(
  text: string,
  field: string,
  context: string,
): { address: string; scheme: 'http' | 'https' | undefined } {
  const match = /^(https?):\/\/(.*?)\/?$/i.exec(text);
  const scheme = match ? (match[1]!.toLowerCase() as 'http' | 'https') : undefined;
  const hostPort = match ? match[2]! : text;
  if (hostPort.includes('@') || hostPort.includes('/')) {
    const shown = text.replace(/^(?:https?:\/\/)?[^/]*@/i, (m) => m.replace(/[^/]*@$/, '***@'));
    throw new ConfigError(
      field,
      `"${shown}" is not host:port or http(s)://host:port (credentials go in the auth option)`,
      context,
    );
  }
  try {
    const { host, port } = parseHostPort(hostPort, hostPort, 'etcd endpoint');
    const shown = host.includes(':') ? `[${host}]` : host;
    return { address: `${shown}:${port ?? DEFAULT_ETCD_PORT}`, scheme };
  } catch (error) {
    const prefix = `invalid target "${hostPort}": `;
    const message = error instanceof TargetError ? error.message : String(error);
    throw new ConfigError(
      field,
      message.startsWith(prefix) ? message.slice(prefix.length) : message,
      context,
    );
  }
}

function pem(
  value: string | Buffer | undefined,
  file: string | undefined,
  field: string,
  context: string,
): Buffer | undefined {
  if (value !== undefined && file !== undefined) {
    throw new ConfigError(field, `give ${field} or ${field}File, not both`, context);
  }
  if (value !== undefined) {
    if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
      throw new ConfigError(field, 'expected PEM text (a string or a Buffer)', context);
    }
    return Buffer.from(value);
  }
  if (file === undefined) return undefined;
  if (typeof file !== 'string' || file === '') {
    throw new ConfigError(`${field}File`, 'expected a file path', context);
  }
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(
      `${field}File`,
      `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`,
      context,
    );
  }
}

/**
 * Checks connection options and resolves where etcd is: `targetEndpoints` (a target's authority),
 * else `options.endpoints`, else `$ETCD_ENDPOINTS`, else 127.0.0.1:2379. Throws `ConfigError`
 * naming the field (`context` says whose options they are). Certificate files are read here.
 */
export function resolveConnection(
  options: EtcdConnectionOptions,
  context: string,
  targetEndpoints?: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): EtcdConnectionSettings {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', 'expected an object', context);
  }
  let field = 'endpoints';
  let raw: string[];
  if (targetEndpoints && targetEndpoints.length > 0) {
    raw = [...targetEndpoints];
  } else if (options.endpoints !== undefined) {
    if (typeof options.endpoints !== 'string' && !Array.isArray(options.endpoints)) {
      throw new ConfigError('endpoints', 'expected a string or an array of strings', context);
    }
    raw = splitEndpoints(options.endpoints);
    if (raw.length === 0) throw new ConfigError('endpoints', 'no endpoint given', context);
  } else if (env[ETCD_ENDPOINTS_ENV]?.trim()) {
    field = ETCD_ENDPOINTS_ENV;
    raw = splitEndpoints(env[ETCD_ENDPOINTS_ENV]);
  } else {
    raw = [DEFAULT_ETCD_ENDPOINT];
  }
  const parsed = raw.map((text) => parseEndpoint(text, field, context));
  const schemes = new Set(parsed.map((p) => p.scheme).filter((s) => s !== undefined));
  if (schemes.size > 1) {
    throw new ConfigError(field, 'mixes http:// and https:// endpoints', context);
  }
  const { tls, auth, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  if (tls !== undefined && typeof tls !== 'boolean' && (typeof tls !== 'object' || tls === null)) {
    throw new ConfigError('tls', 'expected true, false or an object', context);
  }
  if (tls === false && schemes.has('https')) {
    throw new ConfigError('tls', 'is false but the endpoints are https://', context);
  }
  if (tls !== undefined && tls !== false && schemes.has('http')) {
    throw new ConfigError(field, 'are http:// but the tls option is set: use https://', context);
  }
  const secure = schemes.has('https') || (tls !== undefined && tls !== false);
  const tlsObject = typeof tls === 'object' ? tls : {};
  if (tlsObject.serverName !== undefined && typeof tlsObject.serverName !== 'string') {
    throw new ConfigError('tls.serverName', 'expected a string', context);
  }
  const cert = pem(tlsObject.cert, tlsObject.certFile, 'tls.cert', context);
  const key = pem(tlsObject.key, tlsObject.keyFile, 'tls.key', context);
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(
      cert ? 'tls.key' : 'tls.cert',
      'a client certificate needs both cert and key',
      context,
    );
  }
  if (auth !== undefined) {
    if (typeof auth !== 'object' || auth === null) {
      throw new ConfigError('auth', 'expected { username, password }', context);
    }
    if (typeof auth.username !== 'string' || auth.username === '') {
      throw new ConfigError('auth.username', 'expected a non-empty string', context);
    }
    if (typeof auth.password !== 'string') {
      // Never echo the value: it may be the password in the wrong field.
      throw new ConfigError('auth.password', 'expected a string', context);
    }
  }
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isFinite(timeoutMs) ||
    timeoutMs < 10 ||
    timeoutMs > MAX_TIMEOUT_MS
  ) {
    throw new ConfigError(
      'timeoutMs',
      `expected milliseconds between 10 and ${MAX_TIMEOUT_MS}, got ${String(timeoutMs)}`,
      context,
    );
  }
  return {
    endpoints: parsed.map((p) => p.address),
    secure,
    ca: pem(tlsObject.ca, tlsObject.caFile, 'tls.ca', context),
    cert,
    key,
    serverName: tlsObject.serverName,
    auth: auth ? { username: auth.username, password: auth.password } : undefined,
    timeoutMs,
  };
}

/** `https://10.0.0.5:2379,https://10.0.0.6:2379 as user "app"`: for messages (no password). */
export function describeConnection(settings: EtcdConnectionSettings): string {
  const scheme = settings.secure ? 'https' : 'http';
  const where = settings.endpoints.map((e) => `${scheme}://${e}`).join(',');
  return settings.auth ? `${where} as user "${settings.auth.username}"` : where;
}
