import * as http from 'node:http';
import * as https from 'node:https';
import { ConfigError, TargetError, parseHostPort } from '@grpc-lb/core';

/** Where the Consul agent's HTTP API is reached when nothing else says. */
export const DEFAULT_AGENT = '127.0.0.1:8500';
export const ADDRESS_ENV = 'CONSUL_HTTP_ADDR';
export const TOKEN_ENV = 'CONSUL_HTTP_TOKEN';
/** `true` makes a CONSUL_HTTP_ADDR without a scheme https (as the consul CLI does). */
export const SSL_ENV = 'CONSUL_HTTP_SSL';

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

export interface AgentSettings {
  /** From the target authority, else the `address` option, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500. */
  readonly agent: AgentAddress;
  readonly token: string | undefined;
  /** Where the token came from, for messages (never the token itself). */
  readonly tokenSource: 'option' | 'CONSUL_HTTP_TOKEN' | 'none';
}

export interface AgentOptions {
  /** The agent's HTTP API (default `$CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`). */
  readonly address?: string;
  /** ACL token sent as `X-Consul-Token` (default `$CONSUL_HTTP_TOKEN`). */
  readonly token?: string;
}

/** The agent and token a channel uses; throws `ConfigError` for a malformed address. */
export function resolveAgentSettings(
  fromTarget: string | undefined,
  options: AgentOptions,
  env: NodeJS.ProcessEnv = process.env,
): AgentSettings {
  const ssl = env[SSL_ENV] === 'true' || env[SSL_ENV] === '1';
  let agent: AgentAddress;
  if (fromTarget !== undefined) agent = parseAgentAddress(fromTarget, 'target authority');
  else if (options.address !== undefined) agent = parseAgentAddress(options.address, 'address');
  else if (env[ADDRESS_ENV]) agent = parseAgentAddress(env[ADDRESS_ENV], ADDRESS_ENV, ssl);
  else agent = parseAgentAddress(DEFAULT_AGENT, 'address');
  if (options.token !== undefined) {
    return { agent, token: options.token, tokenSource: 'option' };
  }
  const fromEnv = env[TOKEN_ENV];
  return fromEnv
    ? { agent, token: fromEnv, tokenSource: 'CONSUL_HTTP_TOKEN' }
    : { agent, token: undefined, tokenSource: 'none' };
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
  const { agent, token } = settings;
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

/** A keep-alive pool of at most `maxSockets` connections, to `destroy()` when done. */
export function createPool(agent: AgentAddress, maxSockets = 1): http.Agent {
  const options = { keepAlive: true, maxSockets };
  return agent.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
}
