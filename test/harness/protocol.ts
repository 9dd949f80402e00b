/**
 * The contract between the harness (parent) and a backend child process (backend-main.ts):
 * the config passed in an environment variable, and the IPC messages in each direction.
 *
 * Parent → child: a {@link BackendRequest} (a command plus a numeric `id`).
 * Child → parent: one {@link ReplyMessage} per request with the same `id`, plus the unsolicited
 * `listening` / `listenError` message once at startup.
 */
import type { HealthStatus } from './protos';

/** Environment variable holding the child's {@link BackendConfig} as JSON. */
export const BACKEND_CONFIG_ENV = 'GRPCLB_TEST_BACKEND_CONFIG';

export interface BackendConfig {
  name: string;
  /** IPv4 address to listen on, e.g. "127.0.0.2". */
  host: string;
  /** 0 picks a free port; the chosen one is reported in the `listening` message. */
  port: number;
  /** First word of SayHello replies, e.g. "Hello". */
  greeting: string;
  labels: Record<string, string>;
  /** Grace period used when the child receives SIGTERM. */
  sigtermGraceMs: number;
  /**
   * Which grpc.health.v1 methods the backend serves: `watch` (both, the default), `check-only`
   * (Watch answers UNIMPLEMENTED), `none` (no health service at all).
   */
  healthService: HealthServiceMode;
}

export type HealthServiceMode = 'watch' | 'check-only' | 'none';

export interface BackendStats {
  /** Greeter calls received per method (including failed, delayed, hung and cancelled ones). */
  calls: { SayHello: number; SayGoodbye: number };
  totalCalls: number;
  /** Greeter calls answered with an injected error status. */
  failedCalls: number;
  /** Greeter calls received but not yet answered or cancelled (delayed or hung). */
  inFlight: number;
  /** grpc.health.v1 calls received per method. */
  healthCalls: { Check: number; Watch: number };
  /** Health/Watch streams currently open. */
  watchers: number;
  /** TCP connections accepted by the listener since start (or the last resetStats). */
  connectionsAccepted: number;
  /** TCP connections currently open (not reset by resetStats). */
  connectionsOpen: number;
  /** Distinct peers ("ip:port" of the client socket) that made Greeter calls, in first-seen order. */
  peers: string[];
}

/** Each command and the result its reply carries. */
export interface CommandResults {
  ping: { pid: number };
  stats: BackendStats;
  resetStats: null;
  setFailRate: null;
  setDelay: null;
  hang: null;
  setHealth: null;
  stop: null;
}

export type BackendCommand =
  | { cmd: 'ping' }
  | { cmd: 'stats' }
  | { cmd: 'resetStats' }
  | { cmd: 'setFailRate'; rate: number; code: number }
  | { cmd: 'setDelay'; ms: number }
  | { cmd: 'hang'; on: boolean }
  | { cmd: 'setHealth'; service: string; status: HealthStatus }
  | { cmd: 'stop'; graceMs: number };

export type CommandName = BackendCommand['cmd'];

export type BackendRequest = BackendCommand & { id: number };

export type ReplyMessage =
  | { type: 'reply'; id: number; ok: true; result: CommandResults[CommandName] }
  | { type: 'reply'; id: number; ok: false; error: string };

export type ChildMessage =
  | { type: 'listening'; host: string; port: number }
  | { type: 'listenError'; code: string; message: string }
  | ReplyMessage;

const HEALTH_STATUSES: readonly string[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

export function isHealthStatus(value: unknown): value is HealthStatus {
  return typeof value === 'string' && HEALTH_STATUSES.includes(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Narrows a message received from a child; anything else is ignored by the parent. */
export function isChildMessage(value: unknown): value is ChildMessage {
  if (!isRecord(value)) return false;
  switch (value['type']) {
    case 'listening':
      return typeof value['port'] === 'number' && typeof value['host'] === 'string';
    case 'listenError':
      return typeof value['code'] === 'string' && typeof value['message'] === 'string';
    case 'reply':
      return typeof value['id'] === 'number' && typeof value['ok'] === 'boolean';
    default:
      return false;
  }
}

/** Narrows a message received from the parent; anything else is answered with an error reply. */
export function isBackendRequest(value: unknown): value is BackendRequest {
  if (!isRecord(value) || typeof value['id'] !== 'number') return false;
  switch (value['cmd']) {
    case 'ping':
    case 'stats':
    case 'resetStats':
      return true;
    case 'setFailRate':
      return typeof value['rate'] === 'number' && typeof value['code'] === 'number';
    case 'setDelay':
      return typeof value['ms'] === 'number';
    case 'hang':
      return typeof value['on'] === 'boolean';
    case 'setHealth':
      return typeof value['service'] === 'string' && isHealthStatus(value['status']);
    case 'stop':
      return typeof value['graceMs'] === 'number';
    default:
      return false;
  }
}

/** Parses and validates the child's config; every rejection names the field. */
export function parseBackendConfig(json: string | undefined): BackendConfig {
  if (json === undefined || json === '') {
    throw new Error(
      `${BACKEND_CONFIG_ENV} is not set (backend-main is started by the test harness)`,
    );
  }
  const raw: unknown = JSON.parse(json);
  if (!isRecord(raw)) throw new Error(`${BACKEND_CONFIG_ENV}: expected a JSON object`);
  const field = (name: string, type: 'string' | 'number' | 'object'): unknown => {
    const value = raw[name];
    if (typeof value !== type || value === null) {
      throw new Error(`${BACKEND_CONFIG_ENV}: field "${name}" must be a ${type}`);
    }
    return value;
  };
  const port = field('port', 'number') as number;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${BACKEND_CONFIG_ENV}: field "port" must be an integer in 0..65535`);
  }
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(field('labels', 'object') as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      throw new Error(`${BACKEND_CONFIG_ENV}: field "labels.${key}" must be a string`);
    }
    labels[key] = value;
  }
  const healthService = raw['healthService'] ?? 'watch';
  if (healthService !== 'watch' && healthService !== 'check-only' && healthService !== 'none') {
    throw new Error(
      `${BACKEND_CONFIG_ENV}: field "healthService" must be watch, check-only or none`,
    );
  }
  return {
    healthService,
    name: field('name', 'string') as string,
    host: field('host', 'string') as string,
    port,
    greeting: field('greeting', 'string') as string,
    labels,
    sigtermGraceMs: field('sigtermGraceMs', 'number') as number,
  };
}
