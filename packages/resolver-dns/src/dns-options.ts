import { ConfigError, TargetError } from '@grpc-lb/core';
import { formatDuration, parseDurationText } from './duration';
import { DEFAULT_HOLD_DOWN, MAX_HOLD_DOWN_ANSWERS, MAX_HOLD_DOWN_MS } from './hold-down';

/** Which address records to ask for: A and AAAA (`any`), only A, or only AAAA. */
export type AddressFamily = 'any' | 'ipv4' | 'ipv6';

/**
 * When and how a DNS target is resolved. Every field is optional: a target's query parameters
 * override the channel options (`grpc-lb.dns.*`), which override the factory's options, which
 * override the defaults in `DEFAULT_DNS_OPTIONS`.
 */
export interface DnsOptions {
  /** Re-resolve this long after each resolution (default 30 s). */
  readonly intervalMs?: number;
  /** The floor: no two resolutions start closer than this, whatever asks (default 1 s, at least 100 ms). */
  readonly minIntervalMs?: number;
  /** With `useTtl`, the longest wait even when records live longer (default 5 min). */
  readonly maxIntervalMs?: number;
  /** Re-resolve when the answer's shortest TTL expires, clamped to [minIntervalMs, maxIntervalMs] (default false). */
  readonly useTtl?: boolean;
  /** How long to wait for each answer (default: resolv.conf `options timeout:`, else 2 s). */
  readonly timeoutMs?: number;
  /** Rounds over the nameservers before a query fails (default: resolv.conf `options attempts:`, else 2). */
  readonly attempts?: number;
  /** Address families to look up (default `any`: A and AAAA). */
  readonly family?: AddressFamily;
  /**
   * After resolution has failed for this long since the last good answer, the endpoints are
   * dropped (calls fail fast) instead of kept (default: kept for as long as DNS fails).
   */
  readonly maxStaleMs?: number;
  /**
   * Negative answers (NXDOMAIN, or no records) in a row before a name that had endpoints counts as
   * gone and its set is emptied (default 2; 1 empties it at the first).
   */
  readonly holdDownAnswers?: number;
  /**
   * …and how long those negative answers must have lasted, from the first (default 5 s; 0: no
   * wait). Whichever of the two comes later ends the hold-down.
   */
  readonly holdDownMs?: number;
}

/** The merged settings a resolver runs with. */
export interface DnsSettings {
  readonly intervalMs: number;
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly useTtl: boolean;
  readonly timeoutMs: number | undefined;
  readonly attempts: number | undefined;
  readonly family: AddressFamily;
  readonly maxStaleMs: number;
  readonly holdDownAnswers: number;
  readonly holdDownMs: number;
}

export const DEFAULT_DNS_OPTIONS = {
  intervalMs: 30_000,
  minIntervalMs: 1_000,
  maxIntervalMs: 300_000,
  useTtl: false,
  timeoutMs: 2_000,
  attempts: 2,
  family: 'any',
  maxStaleMs: Infinity,
  holdDownAnswers: DEFAULT_HOLD_DOWN.holdDownAnswers,
  holdDownMs: DEFAULT_HOLD_DOWN.holdDownMs,
} as const satisfies Required<DnsOptions>;

/** No setting can make a resolver query more often than this. */
export const ABSOLUTE_MIN_INTERVAL_MS = 100;
const MAX_INTERVAL_MS = 24 * 3_600_000;

type Kind = 'interval' | 'timeout' | 'attempts' | 'boolean' | 'family' | 'answers' | 'holdDown';

interface Spec {
  readonly key: keyof DnsOptions;
  /** Query parameter in a target: `?interval=5s`. */
  readonly param: string;
  /** Channel option. */
  readonly option: string;
  readonly kind: Kind;
}

const SPECS: readonly Spec[] = [
  { key: 'intervalMs', param: 'interval', option: 'grpc-lb.dns.interval_ms', kind: 'interval' },
  {
    key: 'minIntervalMs',
    param: 'min_interval',
    option: 'grpc-lb.dns.min_interval_ms',
    kind: 'interval',
  },
  {
    key: 'maxIntervalMs',
    param: 'max_interval',
    option: 'grpc-lb.dns.max_interval_ms',
    kind: 'interval',
  },
  { key: 'useTtl', param: 'ttl', option: 'grpc-lb.dns.use_ttl', kind: 'boolean' },
  { key: 'timeoutMs', param: 'timeout', option: 'grpc-lb.dns.timeout_ms', kind: 'timeout' },
  { key: 'attempts', param: 'attempts', option: 'grpc-lb.dns.attempts', kind: 'attempts' },
  { key: 'family', param: 'family', option: 'grpc-lb.dns.family', kind: 'family' },
  { key: 'maxStaleMs', param: 'max_stale', option: 'grpc-lb.dns.max_stale_ms', kind: 'interval' },
  {
    key: 'holdDownAnswers',
    param: 'hold_down_answers',
    option: 'grpc-lb.dns.hold_down_answers',
    kind: 'answers',
  },
  { key: 'holdDownMs', param: 'hold_down', option: 'grpc-lb.dns.hold_down_ms', kind: 'holdDown' },
];

/** Query parameters a target may carry (besides `srv`, handled by the target parser). */
export const OPTION_PARAMS: readonly string[] = SPECS.map((s) => s.param);

/** Channel options read by the DNS resolver. */
export const DNS_CHANNEL_OPTIONS = {
  intervalMs: 'grpc-lb.dns.interval_ms',
  minIntervalMs: 'grpc-lb.dns.min_interval_ms',
  maxIntervalMs: 'grpc-lb.dns.max_interval_ms',
  useTtl: 'grpc-lb.dns.use_ttl',
  timeoutMs: 'grpc-lb.dns.timeout_ms',
  attempts: 'grpc-lb.dns.attempts',
  family: 'grpc-lb.dns.family',
  maxStaleMs: 'grpc-lb.dns.max_stale_ms',
  holdDownAnswers: 'grpc-lb.dns.hold_down_answers',
  holdDownMs: 'grpc-lb.dns.hold_down_ms',
} as const satisfies Record<keyof DnsOptions, string>;

type Checked =
  { ok: true; value: number | boolean | AddressFamily } | { ok: false; problem: string };

function checkMs(ms: number, min: number, max: number): Checked {
  if (!Number.isFinite(ms) || ms < min || ms > max) {
    return {
      ok: false,
      problem: `expected ${formatDuration(min)}-${formatDuration(max)}, got ${formatDuration(ms)}`,
    };
  }
  return { ok: true, value: Math.round(ms) };
}

/** `text` is true for query parameters (strings with units), false for programmatic values. */
function check(kind: Kind, value: unknown, text: boolean): Checked {
  switch (kind) {
    case 'interval':
    case 'holdDown':
    case 'timeout': {
      const [min, max] =
        kind === 'interval'
          ? [ABSOLUTE_MIN_INTERVAL_MS, MAX_INTERVAL_MS]
          : kind === 'holdDown'
            ? [0, MAX_HOLD_DOWN_MS]
            : [10, 60_000];
      if (text) {
        const ms = typeof value === 'string' ? parseDurationText(value) : undefined;
        if (ms === undefined) {
          return {
            ok: false,
            problem: `expected a duration like "500ms", "5s" or "2m", got ${JSON.stringify(value)}`,
          };
        }
        return checkMs(ms, min, max);
      }
      if (typeof value !== 'number') {
        return {
          ok: false,
          problem: `expected a number of milliseconds, got ${JSON.stringify(value)}`,
        };
      }
      return checkMs(value, min, max);
    }
    case 'attempts': {
      const n = text && typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 5) {
        return { ok: false, problem: `expected an integer 1-5, got ${JSON.stringify(value)}` };
      }
      return { ok: true, value: n };
    }
    case 'answers': {
      const n = text && typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_HOLD_DOWN_ANSWERS) {
        return {
          ok: false,
          problem: `expected an integer 1-${MAX_HOLD_DOWN_ANSWERS}, got ${JSON.stringify(value)}`,
        };
      }
      return { ok: true, value: n };
    }
    case 'boolean': {
      if (value === true || value === 1 || value === 'true' || value === '1') {
        return { ok: true, value: true };
      }
      if (value === false || value === 0 || value === 'false' || value === '0') {
        return { ok: true, value: false };
      }
      return { ok: false, problem: `expected true or false, got ${JSON.stringify(value)}` };
    }
    case 'family': {
      if (value === 'any' || value === 'ipv4' || value === 'ipv6') return { ok: true, value };
      return { ok: false, problem: `expected any, ipv4 or ipv6, got ${JSON.stringify(value)}` };
    }
  }
}

/** Options from a target's query parameters (strings); throws `TargetError` naming the parameter. */
export function optionsFromParams(
  params: ReadonlyMap<string, string>,
  original: string,
): DnsOptions {
  const options: Record<string, unknown> = {};
  for (const spec of SPECS) {
    const text = params.get(spec.param);
    if (text === undefined) continue;
    const checked = check(spec.kind, text, true);
    if (!checked.ok) throw new TargetError(original, `parameter ${spec.param}: ${checked.problem}`);
    options[spec.key] = checked.value;
  }
  return options;
}

/** Options from channel options (`grpc-lb.dns.*`); throws `ConfigError` naming the option. */
export function optionsFromChannel(channelOptions: Readonly<Record<string, unknown>>): DnsOptions {
  const options: Record<string, unknown> = {};
  for (const spec of SPECS) {
    const value = channelOptions[spec.option];
    if (value === undefined) continue;
    const checked = check(spec.kind, value, false);
    if (!checked.ok) throw new ConfigError(spec.option, checked.problem);
    options[spec.key] = checked.value;
  }
  return options;
}

/** Checks options given in code; throws `ConfigError` naming `<context>.<field>`. */
export function checkOptions(input: DnsOptions, context: string): DnsOptions {
  const options: Record<string, unknown> = {};
  for (const spec of SPECS) {
    const value = input[spec.key];
    if (value === undefined) continue;
    if (spec.key === 'maxStaleMs' && value === Infinity) {
      options[spec.key] = value;
      continue;
    }
    const checked = check(spec.kind, value, false);
    if (!checked.ok) throw new ConfigError(`${context}.${spec.key}`, checked.problem);
    options[spec.key] = checked.value;
  }
  return options;
}

/** Later layers win. The floor applies to everything: a shorter interval is raised to it. */
export function mergeSettings(...layers: readonly DnsOptions[]): DnsSettings {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) merged[key] = value;
    }
  }
  const pick = <K extends keyof DnsOptions>(key: K): DnsOptions[K] => merged[key] as DnsOptions[K];
  const minIntervalMs = pick('minIntervalMs') ?? DEFAULT_DNS_OPTIONS.minIntervalMs;
  return {
    minIntervalMs,
    intervalMs: Math.max(minIntervalMs, pick('intervalMs') ?? DEFAULT_DNS_OPTIONS.intervalMs),
    maxIntervalMs: Math.max(
      minIntervalMs,
      pick('maxIntervalMs') ?? DEFAULT_DNS_OPTIONS.maxIntervalMs,
    ),
    useTtl: pick('useTtl') ?? DEFAULT_DNS_OPTIONS.useTtl,
    timeoutMs: pick('timeoutMs'),
    attempts: pick('attempts'),
    family: pick('family') ?? DEFAULT_DNS_OPTIONS.family,
    maxStaleMs: pick('maxStaleMs') ?? DEFAULT_DNS_OPTIONS.maxStaleMs,
    holdDownAnswers: pick('holdDownAnswers') ?? DEFAULT_DNS_OPTIONS.holdDownAnswers,
    holdDownMs: pick('holdDownMs') ?? DEFAULT_DNS_OPTIONS.holdDownMs,
  };
}
