import {
  TargetError,
  isSecretName,
  parseHostPort,
  redactSecrets,
  type TargetUri,
} from '@grpc-lb/core';
import { formatDuration, parseGoDuration } from './duration';

/** Consul's longest blocking wait; a longer `wait` is capped by the server anyway. */
export const MAX_WAIT_MS = 10 * 60_000;
/** Consul's own default blocking wait. */
export const DEFAULT_WAIT_MS = 5 * 60_000;

/**
 * A parsed Consul target. Ours and grpc-consul-resolver's forms:
 *
 *     consul:///hello                              passing instances of service hello, local agent
 *     consul://10.0.0.5:8500/hello?tag=v2&dc=dc2   agent 10.0.0.5:8500, tagged v2, datacenter dc2
 *     consul:///hello?healthy=false                every instance, whatever its checks say
 *     consul:///hello?near=_agent&filter=Service.Meta.version%3D%3Dv2&wait=30s
 *     consul:///hello?config=grpc-lb/hello         and the service config held in KV key grpc-lb/hello
 *
 * Credentials never go in a target (targets are logged): `token` (or any secret-named parameter)
 * and `user:pass@` are rejected.
 *
 * grpc-consul-resolver's parameters: `wait`, `tag`, `healthy`, `dc`, `near`, `allow-stale` and
 * `require-consistent` are honoured (`tag` may repeat; `healthy` defaults to true here); `limit`,
 * `timeout`, `max-backoff`, `insecure` and `token` are refused, each with what to use instead.
 */
export interface ConsulTarget {
  /** The target as written. */
  readonly original: string;
  readonly service: string;
  /** `host:port` of the agent from the target's authority; undefined: the resolver's default. */
  readonly agent: string | undefined;
  /** `healthy=true` (the default): only instances whose checks all pass (`?passing=true`). */
  readonly passingOnly: boolean;
  /** Every tag must be present (`tag` may repeat). */
  readonly tags: readonly string[];
  readonly dc: string | undefined;
  readonly near: string | undefined;
  /** A Consul filter expression. */
  readonly filter: string | undefined;
  /** Blocking query wait, 1 ms – 10 min (default 5 min). */
  readonly waitMs: number;
  /** `allow-stale`: any server may answer (`?stale`). */
  readonly stale: boolean;
  /** `require-consistent`: the leader confirms it is the leader (`?consistent`). */
  readonly consistent: boolean;
  /**
   * `config`: the Consul KV key (percent-decoded, no leading `/`) whose value is the service config
   * JSON, followed like the instances; undefined: the channel's own service config applies.
   */
  readonly config: string | undefined;
}

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const DATACENTER = /^[A-Za-z0-9_-]{1,64}$/;
/** grpc-consul-resolver parameters refused on purpose, and what to use instead. */
const REFUSED: ReadonlyMap<string, string> = new Map([
  ['limit', 'every matching instance gets calls; narrow the set with tag, filter or dc instead'],
  [
    'timeout',
    'each request to the agent is bounded by the requestTimeoutMs option of the resolver factory (a blocking query by wait plus it); use that option, or wait, instead',
  ],
  [
    'max-backoff',
    "retries follow the channel's refresh backoff; set the grpc-lb.max_refresh_backoff_ms channel option instead",
  ],
  [
    'insecure',
    'certificate checks are not switched off from a target; give the agent as an https:// `address` option or CONSUL_HTTP_ADDR, with its CA trusted, instead',
  ],
]);
const KNOWN = [
  'healthy',
  'tag',
  'dc',
  'near',
  'filter',
  'wait',
  'allow-stale',
  'require-consistent',
  'config',
];

/** The target with any `user:pass@` and `token=`-like value hidden, for error messages. */
export function redactTarget(target: string): string {
  return redactSecrets(target);
}

function parseBoolean(name: string, value: string, original: string): boolean {
  if (value === 'true' || value === '1' || value === '') return true;
  if (value === 'false' || value === '0') return false;
  throw new TargetError(original, `parameter ${name}="${value}" is not true or false`);
}

function single(params: URLSearchParams, name: string, original: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw new TargetError(original, `parameter ${name} is given twice`);
  return values[0];
}

/** Parses `consul:` targets; throws `TargetError` naming the part that is wrong. */
export function parseConsulTarget(uri: TargetUri, original: string): ConsulTarget {
  const shown = redactTarget(original);
  if (uri.authority?.includes('@')) {
    throw new TargetError(
      shown,
      "credentials do not belong in a target (targets are logged), and the agent's HTTP basic auth is not used: give an ACL token with the `token` option or CONSUL_HTTP_TOKEN instead",
    );
  }
  const hash = uri.path.indexOf('#');
  if (hash >= 0) throw new TargetError(shown, 'a Consul target takes no fragment');
  const question = uri.path.indexOf('?');
  const path = (question >= 0 ? uri.path.slice(0, question) : uri.path).replace(/^\//, '');
  const params = new URLSearchParams(question >= 0 ? uri.path.slice(question + 1) : '');
  for (const name of new Set(params.keys())) {
    if (isSecretName(name)) {
      throw new TargetError(
        shown,
        `${name} does not belong in a target (targets are logged): give the ACL token with the \`token\` option or CONSUL_HTTP_TOKEN instead`,
      );
    }
  }
  let service: string;
  try {
    service = decodeURIComponent(path);
  } catch {
    throw new TargetError(shown, `service "${path}" is not valid percent-encoding`);
  }
  if (/^\/*$/.test(service)) {
    throw new TargetError(
      shown,
      'expected consul://[agent host:port]/<service>[?tag=…&dc=…], e.g. consul:///hello',
    );
  }
  if (!SERVICE_NAME.test(service)) {
    throw new TargetError(
      shown,
      `"${service}" is not a Consul service name (letters, digits, "-", "_" and ".")`,
    );
  }
  let agent: string | undefined;
  if (uri.authority !== undefined && uri.authority !== '') {
    const { host, port } = parseHostPort(uri.authority, shown, 'agent address');
    agent = `${host.includes(':') ? `[${host}]` : host}:${port ?? 8500}`;
  }
  for (const name of new Set(params.keys())) {
    const instead = REFUSED.get(name);
    if (instead !== undefined) {
      throw new TargetError(
        shown,
        `parameter ${name} (grpc-consul-resolver) is not supported: ${instead}`,
      );
    }
    if (!KNOWN.includes(name)) {
      throw new TargetError(shown, `unknown parameter "${name}" (known: ${KNOWN.join(', ')})`);
    }
  }
  const healthy = single(params, 'healthy', shown);
  const tags = params.getAll('tag');
  for (const tag of tags) {
    if (tag === '') throw new TargetError(shown, 'parameter tag is empty');
  }
  const dc = single(params, 'dc', shown);
  if (dc !== undefined && !DATACENTER.test(dc)) {
    throw new TargetError(shown, `parameter dc="${dc}" is not a datacenter name`);
  }
  const near = single(params, 'near', shown);
  if (near === '') throw new TargetError(shown, 'parameter near is empty (e.g. near=_agent)');
  const filter = single(params, 'filter', shown);
  if (filter === '') throw new TargetError(shown, 'parameter filter is empty');
  const waitText = single(params, 'wait', shown);
  let waitMs = DEFAULT_WAIT_MS;
  if (waitText !== undefined) {
    const parsed = parseGoDuration(waitText);
    if (parsed === undefined) {
      throw new TargetError(shown, `parameter wait="${waitText}" is not a duration like 30s or 5m`);
    }
    if (parsed > MAX_WAIT_MS) {
      throw new TargetError(
        shown,
        `parameter wait="${waitText}" is longer than Consul's maximum ${formatDuration(MAX_WAIT_MS)}`,
      );
    }
    waitMs = parsed;
  }
  const staleText = single(params, 'allow-stale', shown);
  const consistentText = single(params, 'require-consistent', shown);
  const stale = staleText !== undefined && parseBoolean('allow-stale', staleText, shown);
  const consistent =
    consistentText !== undefined && parseBoolean('require-consistent', consistentText, shown);
  if (stale && consistent) {
    throw new TargetError(shown, 'allow-stale and require-consistent exclude each other');
  }
  const config = single(params, 'config', shown);
  if (config !== undefined) checkKey(config, shown);
  return {
    original: shown,
    service,
    agent,
    passingOnly: healthy === undefined ? true : parseBoolean('healthy', healthy, shown),
    tags,
    dc,
    near,
    filter,
    waitMs,
    stale,
    consistent,
    config,
  };
}

/** A Consul KV key as the `config` parameter may name it; throws `TargetError` saying what is wrong. */
function checkKey(key: string, shown: string): void {
  if (key === '') {
    throw new TargetError(
      shown,
      'parameter config is empty: name a Consul KV key holding the service config, e.g. config=grpc-lb/hello',
    );
  }
  if (key.startsWith('/')) {
    throw new TargetError(
      shown,
      `parameter config="${key}" starts with "/": Consul KV keys have none (write config=${key.replace(/^\/+/, '')})`,
    );
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) {
    throw new TargetError(
      shown,
      `parameter config=${JSON.stringify(key)} contains a control character`,
    );
  }
}
