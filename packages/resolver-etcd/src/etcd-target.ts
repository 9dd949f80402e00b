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

/** Parses `etcd://[endpoints]/<service>`; throws `TargetError` naming the part that is wrong. */
export function parseEtcdTarget(uri: TargetUri, written: string): EtcdTarget {
  const original = redactSecrets(written);
  const raw = uri.path;
  if (/[?#]/.test(raw)) {
    throw new TargetError(
      original,
      'an etcd target takes no query or fragment: percent-encode "?" as %3F and "#" as %23 if the key holds them',
    );
  }
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
  return {
    original,
    service,
    keyPrefix: keyPrefixOf(service),
    endpoints,
    authority: authorityOf(service),
  };
}
