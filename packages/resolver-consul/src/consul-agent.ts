import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import { ConfigError, TargetError, parseHostPort } from '@grpc-lb/core';

/** Where the Consul agent's HTTP API is reached when nothing else says. */
export const DEFAULT_AGENT = '127.0.0.1:8500';
export const ADDRESS_ENV = 'CONSUL_HTTP_ADDR';
export const TOKEN_ENV = 'CONSUL_HTTP_TOKEN';
/** `true` makes a CONSUL_HTTP_ADDR without a scheme https (as the consul CLI does). */
export const SSL_ENV = 'CONSUL_HTTP_SSL';
/** A file holding the ACL token, read again before each request (so a rotated token is used). */
export const TOKEN_FILE_ENV = 'CONSUL_HTTP_TOKEN_FILE';
/** PEM file of the CA(s) that sign the agent's HTTPS certificate. */
export const CACERT_ENV = 'CONSUL_CACERT';
/** A directory of PEM files of CAs, read when CONSUL_CACERT is not set (as the consul CLI does). */
export const CAPATH_ENV = 'CONSUL_CAPATH';
/** PEM files of the client certificate and key (agents with `verify_incoming`). */
export const CLIENT_CERT_ENV = 'CONSUL_CLIENT_CERT';
export const CLIENT_KEY_ENV = 'CONSUL_CLIENT_KEY';
/** `false` switches off the check of the agent's certificate (as the consul CLI does). */
export const SSL_VERIFY_ENV = 'CONSUL_HTTP_SSL_VERIFY';
/** The name the agent's certificate is checked against, when not the address's host. */
export const TLS_SERVER_NAME_ENV = 'CONSUL_TLS_SERVER_NAME';

export interface AgentAddress {
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:8500` — for messages. */
  readonly url: string;
}

/**
 * `http://host:port`, `https://host:port` or `host:port` (port default 8500, or 443 for
 * https without one). Throws `ConfigError` naming `field`.
 */
export function parseAgentAddress(text: string, field: string, defaultHttps = false): AgentAddress {
  if (/^[^/?#]*(?:\/\/[^/?#]*)?@/.test(text.trim())) {
    // ConfigError redacts the value too; this says what to do instead.
    throw new ConfigError(
      field,
      `"${text}" holds credentials ("user:password@"), which the agent address does not take: give an ACL token with the \`token\` option or CONSUL_HTTP_TOKEN instead`,
    );
  }
  const match = /^(?:(https?):\/\/)?([^/?#@]+)\/?$/.exec(text.trim());
  if (!match) {
    throw new ConfigError(
      field,
      `"${text}" is not http://host:port, https://host:port or host:port`,
    );
  }
  const https = match[1] !== undefined ? match[1] === 'https' : defaultHttps;
  let parsed;
  try {
    parsed = parseHostPort(match[2]!, text, 'agent address');
  } catch (error) {
    throw new ConfigError(field, error instanceof TargetError ? error.message : String(error));
  }
  const port = parsed.port ?? (https && match[1] !== undefined ? 443 : 8500);
  const protocol = https ? 'https:' : 'http:';
  const hostText = parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host;
  return { protocol, host: parsed.host, port, url: `${protocol}//${hostText}:${port}` };
}

/** Where the ACL token comes from (for messages: never the token itself). */
export type TokenSource =
  'option' | 'CONSUL_HTTP_TOKEN' | 'tokenFile' | 'CONSUL_HTTP_TOKEN_FILE' | 'none';

/** TLS settings for an https:// agent, passed to `https.Agent`. */
export interface AgentTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
  /** false only with `insecureSkipVerify` / CONSUL_HTTP_SSL_VERIFY=false. */
  readonly rejectUnauthorized: boolean;
}

export interface AgentSettings {
  /** From the target authority, else the `address` option, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500. */
  readonly agent: AgentAddress;
  /** A fixed token (the `token` option or CONSUL_HTTP_TOKEN). */
  readonly token: string | undefined;
  /** A file read before each request instead (the `tokenFile` option or CONSUL_HTTP_TOKEN_FILE). */
  readonly tokenFile?: string;
  /** Where the token came from, for messages (never the token itself). */
  readonly tokenSource: TokenSource;
  /** For an https:// agent. */
  readonly tls?: AgentTls;
}

export interface AgentOptions {
  /** The agent's HTTP API (default `$CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`). */
  readonly address?: string;
  /** ACL token sent as `X-Consul-Token` (default `$CONSUL_HTTP_TOKEN`). */
  readonly token?: string;
  /**
   * A file holding the ACL token (default `$CONSUL_HTTP_TOKEN_FILE`), read again before each
   * request, so a token rotated in the file is used from the next request on.
   */
  readonly tokenFile?: string;
  /** The CA certificate(s) of an https:// agent: PEM text or a PEM file's path (default `$CONSUL_CACERT`, else the system CAs). */
  readonly ca?: string | Buffer;
  /**
   * A directory of PEM files, each holding CA certificate(s), all trusted (default
   * `$CONSUL_CAPATH`); `ca` / `$CONSUL_CACERT` win when given, as in the consul CLI.
   */
  readonly caPath?: string;
  /** Client certificate for an agent with `verify_incoming`: PEM text or a file's path (default `$CONSUL_CLIENT_CERT`). */
  readonly cert?: string | Buffer;
  /** Its private key: PEM text or a file's path (default `$CONSUL_CLIENT_KEY`). */
  readonly key?: string | Buffer;
  /** The name the agent's certificate must carry, when not the address's host (default `$CONSUL_TLS_SERVER_NAME`). */
  readonly tlsServerName?: string;
  /** Do not check the agent's certificate at all (default: `$CONSUL_HTTP_SSL_VERIFY` is `false`). */
  readonly insecureSkipVerify?: boolean;
}

/** `the \`token\` option`, `CONSUL_HTTP_TOKEN`, `the file /run/token (CONSUL_HTTP_TOKEN_FILE)` — for messages. */
export function describeTokenSource(settings: AgentSettings): string {
  switch (settings.tokenSource) {
    case 'option':
      return 'the `token` option';
    case 'tokenFile':
      return `the file ${settings.tokenFile ?? ''} (the \`tokenFile\` option)`;
    case 'CONSUL_HTTP_TOKEN_FILE':
      return `the file ${settings.tokenFile ?? ''} (${TOKEN_FILE_ENV})`;
    default:
      return settings.tokenSource;
  }
}

/** PEM text given as is, or read from a path; throws `ConfigError` naming `field` (never the value). */
function pem(value: string | Buffer, field: string, isPath = false): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (!isPath && value.includes('-----BEGIN')) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw new ConfigError(
      field,
      isPath
        ? `cannot read the file "${value}" (${code})`
        : `is neither PEM text nor the path of a readable file (${code})`,
    );
  }
}

/**
 * Every CA certificate in the PEM files of directory `dir` (as the consul CLI reads
 * CONSUL_CAPATH: each regular file, subdirectories not followed). Throws `ConfigError` naming
 * `field` when the directory cannot be read or holds no certificate.
 */
function caDirectory(dir: string, field: string): Buffer {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw new ConfigError(field, `cannot read the directory "${dir}" (${code})`);
  }
  const certificates: Buffer[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let text: Buffer;
    try {
      if (!statSync(path).isFile()) continue;
      text = readFileSync(path);
    } catch {
      continue; // unreadable entries are skipped, as the consul CLI does
    }
    if (text.includes('-----BEGIN CERTIFICATE-----')) certificates.push(text, Buffer.from('\n'));
  }
  if (certificates.length === 0) {
    throw new ConfigError(field, `the directory "${dir}" holds no PEM certificate`);
  }
  return Buffer.concat(certificates);
}

function resolveTls(
  agent: AgentAddress,
  options: AgentOptions,
  env: NodeJS.ProcessEnv,
): AgentTls | undefined {
  const given = (
    ['ca', 'caPath', 'cert', 'key', 'tlsServerName', 'insecureSkipVerify'] as const
  ).filter((name) => options[name] !== undefined);
  if (agent.protocol !== 'https:') {
    if (given.length > 0) {
      // Certificates for a plain-HTTP agent would be silently unused: the token would go in clear.
      throw new ConfigError(
        given[0]!,
        `the agent ${agent.url} is plain HTTP: give it as https://host:port (or set CONSUL_HTTP_SSL=true) to use TLS`,
      );
    }
    return undefined;
  }
  const fromEnv = (name: string): string | undefined => (env[name] ? env[name] : undefined);
  const load = (option: 'ca' | 'cert' | 'key', envName: string): Buffer | undefined => {
    const value = options[option];
    if (value !== undefined) return pem(value, option);
    const path = fromEnv(envName);
    return path !== undefined ? pem(path, envName, true) : undefined;
  };
  let ca = load('ca', CACERT_ENV);
  if (ca === undefined) {
    if (options.caPath !== undefined) ca = caDirectory(options.caPath, 'caPath');
    else if (fromEnv(CAPATH_ENV) !== undefined) ca = caDirectory(env[CAPATH_ENV]!, CAPATH_ENV);
  }
  const cert = load('cert', CLIENT_CERT_ENV);
  const key = load('key', CLIENT_KEY_ENV);
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(
      cert === undefined ? 'cert' : 'key',
      `a client certificate needs its key and the key its certificate (the \`cert\` and \`key\` options, or ${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV})`,
    );
  }
  const servername = options.tlsServerName ?? fromEnv(TLS_SERVER_NAME_ENV);
  const verifyEnv = fromEnv(SSL_VERIFY_ENV);
  const skip = options.insecureSkipVerify ?? (verifyEnv === 'false' || verifyEnv === '0');
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(servername ? { servername } : {}),
    rejectUnauthorized: !skip,
  };
}

/**
 * The agent, token and TLS settings a channel uses; throws `ConfigError` for a malformed address
 * or an unreadable certificate. Token: the `token` option, else the `tokenFile` option, else
 * CONSUL_HTTP_TOKEN_FILE, else CONSUL_HTTP_TOKEN (as Consul's own client, the file wins).
 */
export function resolveAgentSettings(
  fromTarget: string | undefined,
  options: AgentOptions,
  env: NodeJS.ProcessEnv = process.env,
): AgentSettings {
  const ssl = env[SSL_ENV] === 'true' || env[SSL_ENV] === '1';
  let agent: AgentAddress;
  if (fromTarget !== undefined) agent = parseAgentAddress(fromTarget, 'target authority', ssl);
  else if (options.address !== undefined) agent = parseAgentAddress(options.address, 'address');
  else if (env[ADDRESS_ENV]) agent = parseAgentAddress(env[ADDRESS_ENV], ADDRESS_ENV, ssl);
  else agent = parseAgentAddress(DEFAULT_AGENT, 'address', ssl);
  const tls = resolveTls(agent, options, env);
  const base = { agent, ...(tls ? { tls } : {}) };
  if (options.token !== undefined) return { ...base, token: options.token, tokenSource: 'option' };
  if (options.tokenFile !== undefined) {
    return { ...base, token: undefined, tokenFile: options.tokenFile, tokenSource: 'tokenFile' };
  }
  const file = env[TOKEN_FILE_ENV];
  if (file) {
    return { ...base, token: undefined, tokenFile: file, tokenSource: 'CONSUL_HTTP_TOKEN_FILE' };
  }
  const fromEnv = env[TOKEN_ENV];
  return fromEnv
    ? { ...base, token: fromEnv, tokenSource: 'CONSUL_HTTP_TOKEN' }
    : { ...base, token: undefined, tokenSource: 'none' };
}

/**
 * The token to send now: the fixed one, or the token file read again (a few bytes, at most about
 * once a second per channel), so a rotated token is picked up by the next request. An empty file
 * means no token. Rejects, naming the file (never its content), when it cannot be read.
 */
export async function currentToken(settings: AgentSettings): Promise<string | undefined> {
  if (settings.tokenFile === undefined) return settings.token;
  let text: string;
  try {
    text = await readFile(settings.tokenFile, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw Object.assign(
      new Error(`cannot read the ACL token from ${describeTokenSource(settings)} (${code})`),
      { code: 'ETOKENFILE' },
    );
  }
  const token = text.trim();
  return token === '' ? undefined : token;
}

export interface AgentResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One request to the agent over `pool` (a keep-alive agent the caller destroys when done, so no
 * socket outlives it). Rejects on `signal`, on `timeoutMs` without a full answer, or a socket error.
 */
export function agentRequest(
  settings: AgentSettings,
  pool: http.Agent,
  method: string,
  path: string,
  options: { body?: unknown; signal?: AbortSignal; timeoutMs: number },
): Promise<AgentResponse> {
  return currentToken(settings).then((token) => send(settings, token, pool, method, path, options));
}

function send(
  settings: AgentSettings,
  token: string | undefined,
  pool: http.Agent,
  method: string,
  path: string,
  options: { body?: unknown; signal?: AbortSignal; timeoutMs: number },
): Promise<AgentResponse> {
  const { agent, tls } = settings;
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: http.OutgoingHttpHeaders = {};
    if (token !== undefined && token !== '') headers['x-consul-token'] = token;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const request = (agent.protocol === 'https:' ? https : http).request({
      method,
      host: agent.host,
      port: agent.port,
      path,
      headers,
      agent: pool,
      ...(tls && agent.protocol === 'https:' ? tls : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const timer = setTimeout(() => {
      request.destroy(
        Object.assign(new Error(`no answer within ${options.timeoutMs} ms`), {
          code: 'ETIMEDOUT',
        }),
      );
    }, options.timeoutMs);
    timer.unref();
    let settled = false;
    const done = (error: Error | undefined, response?: AgentResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(response!);
    };
    request.on('error', (error) => done(error));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', (error) => done(error));
      response.on('close', () => {
        if (!response.complete) done(new Error('the agent closed the connection mid-answer'));
      });
      response.on('end', () =>
        done(undefined, {
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    request.end(body);
  });
}

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** One sentence for a failed request, with what to do for the usual TLS and connection failures. */
export function describeRequestError(error: unknown, settings: AgentSettings): string {
  const code = (error as { code?: unknown }).code;
  let message = error instanceof Error ? error.message : String(error);
  // OpenSSL's own text ("80DC…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert
  // certificate required:../deps/…") comes down to its reason.
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1];
  if (reason !== undefined) message = `TLS handshake failed: ${reason.trim()}`;
  if (code === 'ECONNREFUSED') return 'connection refused (is the agent running?)';
  if (typeof code === 'string' && UNTRUSTED.has(code)) {
    return `${message}: the agent's certificate is not trusted (give its CA with the \`ca\` option, ${CACERT_ENV} or ${CAPATH_ENV})`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `${message} (set the \`tlsServerName\` option or ${TLS_SERVER_NAME_ENV} to a name the certificate carries)`;
  }
  const clientCertHint = `give the \`cert\` and \`key\` options or ${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV}`;
  if (settings.agent.protocol === 'https:') {
    if (/certificate required|bad certificate|unknown ca|handshake failure/i.test(message)) {
      return settings.tls?.cert
        ? `${message}: the agent refused the client certificate (is it signed by a CA the agent trusts?)`
        : `${message}: the agent requires a client certificate (verify_incoming): ${clientCertHint}`;
    }
    if (!settings.tls?.cert && /socket hang up|ECONNRESET/i.test(`${message} ${String(code)}`)) {
      // Also what an agent restarting looks like: say it only as a possibility.
      return `${message} (if the agent requires client certificates (verify_incoming), ${clientCertHint})`;
    }
  }
  if (
    settings.agent.protocol === 'http:' &&
    /HPE_INVALID|parse error|wrong version/i.test(`${message} ${String(code)}`)
  ) {
    return `${message} (is the agent's port https? give it as https://host:port)`;
  }
  return message;
}

/** A keep-alive pool of at most `maxSockets` connections, to `destroy()` when done. */
export function createPool(settings: AgentSettings, maxSockets = 1): http.Agent {
  const options = { keepAlive: true, maxSockets };
  return settings.agent.protocol === 'https:'
    ? new https.Agent({ ...options, ...settings.tls })
    : new http.Agent(options);
}
