import { parseHostPort, redactSecrets, TargetError, type TargetUri } from '@grpc-lb/core';

/** etcd's client port, used when an endpoint in a target names none. */
export const DEFAULT_ETCD_PORT = 2379;

/**
 * A parsed etcd target:
 *
 *     etcd:///services/hello                      prefix "services/hello/", etcd from the options
 *     etcd://10.0.0.5:2379,10.0.0.6:2379/services/hello     these etcd members
 *     etcd:////services/hello                     prefix "/services/hello/" (keys with a leading slash)
 *
 * The path is the service name exactly as etcd's Go resolver reads it (`target.Endpoint()`:
 * percent-decoded, without the one leading slash of `///`); keys are `<service>/<id>`.
 *
 * One query parameter is accepted, `config=<key>`: the etcd key whose value is the channel's
 * service config (`etcd:///services/hello?config=config/hello`), percent-decoded. It must lie
 * outside the endpoint prefix, where etcd's Go naming readers of the same service never look.
 * Any other parameter is refused, named without its value.
 */
export interface EtcdTarget {
  /** The target as written, with any secret in it replaced by `***` (for messages). */
  readonly original: string;
  /** The service name: the decoded path (`services/hello`). */
  readonly service: string;
  /** The key prefix watched: the service and a slash (`services/hello/`). */
  readonly keyPrefix: string;
  /** etcd members named in the target's authority (`host:port`), or undefined. */
  readonly endpoints: readonly string[] | undefined;
  /** The default `:authority` of calls: the service's last path segment, as a host name. */
  readonly authority: string;
  /** `?config=<key>`: the etcd key holding the service config (decoded), or undefined. */
  readonly configKey?: string;
}

/** The key prefix for a service name: `services/hello` → `services/hello/`; a trailing `/` is kept as is. */
export function keyPrefixOf(service: string): string {
  return service.endsWith('/') ? service : `${service}/`;
}

/**
 * One `host[:port]` label for the default authority: the last non-empty segment of the service,
 * with every character a host name cannot hold replaced by `-` (`hello_v2` → `hello-v2`).
 */
export function authorityOf(service: string): string {
  const segments = service.split('/').filter((s) => s !== '');
  const last = segments[segments.length - 1] ?? '';
  const host = last
    .replace(/[^A-Za-z0-9.-]/g, '-')
    .replace(/^[.-]+|[.-]+$/g, '')
    .replace(/\.{2,}/g, '.')
    .slice(0, 253);
  return host === '' ? 'etcd' : host;
}

/** The `config=` parameter of a target's query (the only one accepted), decoded. */
function parseQuery(query: string, original: string): string | undefined {
  let configKey: string | undefined;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq >= 0 ? part.slice(0, eq) : part;
    let name: string;
    try {
      name = decodeURIComponent(rawName);
    } catch {
      name = rawName;
    }
    if (name !== 'config') {
      // Only the name: a value could be a secret (`token=…`).
      throw new TargetError(
        original,
        `unknown query parameter "${redactSecrets(name)}" (an etcd target takes only config=<key>)`,
      );
    }
    if (configKey !== undefined) throw new TargetError(original, 'config is given twice');
    const raw = eq >= 0 ? part.slice(eq + 1) : '';
    if (raw === '') {
      throw new TargetError(
        original,
        'config= is empty: name the etcd key holding the service config, e.g. config=config/hello',
      );
    }
    try {
      configKey = decodeURIComponent(raw);
    } catch {
      throw new TargetError(original, `the config key "${raw}" has an invalid percent-encoding`);
    }
  }
  return configKey;
}

/** Parses `etcd://[endpoints]/<service>[?config=<key>]`; throws `TargetError` naming the part that is wrong. */
export function parseEtcdTarget(uri: TargetUri, written: string): EtcdTarget {
  const original = redactSecrets(written);
  if (uri.path.includes('#')) {
    throw new TargetError(
      original,
      'an etcd target takes no fragment: percent-encode "#" as %23 if the key holds it',
    );
  }
  const question = uri.path.indexOf('?');
  const raw = question >= 0 ? uri.path.slice(0, question) : uri.path;
  const configKey = question >= 0 ? parseQuery(uri.path.slice(question + 1), original) : undefined;
  let service: string;
  try {
    service = decodeURIComponent(raw);
  } catch {
    throw new TargetError(original, `the service "${raw}" has an invalid percent-encoding`);
  }
  if (service.replace(/\//g, '') === '') {
    throw new TargetError(
      original,
      'no service prefix: expected etcd:///<prefix>, e.g. etcd:///services/hello',
    );
  }
  let endpoints: string[] | undefined;
  if (uri.authority !== undefined && uri.authority !== '') {
    if (uri.authority.includes('@')) {
      throw new TargetError(
        original,
        'credentials do not belong in a target (targets are logged): give them as the auth option of the etcd resolver factory',
      );
    }
    endpoints = uri.authority.split(',').map((part, i) => {
      const what = `etcd endpoint ${i + 1}`;
      if (part === '') throw new TargetError(original, `${what} is empty`);
      const { host, port } = parseHostPort(part, original, what);
      const shown = host.includes(':') ? `[${host}]` : host;
      return `${shown}:${port ?? DEFAULT_ETCD_PORT}`;
    });
  }
  const keyPrefix = keyPrefixOf(service);
  if (configKey?.startsWith(keyPrefix)) {
    const beside = `${service.replace(/\/+$/, '')}.config`;
    throw new TargetError(
      original,
      `the config key "${configKey}" is under the endpoint prefix "${keyPrefix}": etcd's Go naming resolver lists that prefix and would read the document as an endpoint (an empty address) or warn about it; keep it beside the prefix, e.g. config=${beside}`,
    );
  }
  return {
    original,
    service,
    keyPrefix,
    endpoints,
    authority: authorityOf(service),
    ...(configKey !== undefined ? { configKey } : {}),
  };
}
