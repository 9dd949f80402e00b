import { isIP } from 'node:net';
import {
  formatHostPort,
  isSecretName,
  parseHostPort,
  redactSecrets,
  TargetError,
  type TargetUri,
} from '@grpc-lb/core';
import { OPTION_PARAMS, optionsFromParams, type DnsOptions } from './dns-options';

/** The gRPC default port, used when a target names none (gRPC naming spec). */
export const DEFAULT_PORT = 443;
export const DNS_PORT = 53;

export interface DnsServerAddress {
  /** An IPv4 or IPv6 literal (no brackets). */
  readonly host: string;
  readonly port: number;
}

/**
 * A parsed DNS target:
 *
 *     dns+lb:///api.prod.svc.cluster.local:50051     A/AAAA, nameservers from /etc/resolv.conf
 *     dns+lb:///api.prod:50051                       the same through the search list (in a pod)
 *     dns+lb://10.96.0.10:53/api.prod.svc.cluster.local:50051     ask that DNS server
 *     dns+lb:///_grpc._tcp.api.prod                  SRV: ports and weights from the records
 *     dns+lb:///api.prod?srv=grpc                    the same, `_grpc._tcp.api.prod`
 *     dns+lb:///api.prod:50051?interval=5s&ttl=true  options as query parameters
 */
export interface DnsTarget {
  /** The target as written, with any secret in it replaced by `***` (for messages). */
  readonly original: string;
  /** `ip`: an IP literal, nothing to look up; `address`: A/AAAA records; `srv`: SRV records. */
  readonly kind: 'ip' | 'address' | 'srv';
  /** The name to look up (no trailing dot), or the IP literal. */
  readonly name: string;
  /** Written with a trailing dot: fully qualified, the search list does not apply. */
  readonly absolute: boolean;
  /** The port for `ip` and `address` targets (443 when none is written); `undefined` for SRV. */
  readonly port: number | undefined;
  /** The DNS server named in the target; `undefined` means the nameservers of resolv.conf. */
  readonly server: DnsServerAddress | undefined;
  /** The default `:authority` of calls (and TLS name). */
  readonly authority: string;
  /** Options from the query parameters. */
  readonly options: DnsOptions;
}

const PORT_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const KNOWN_PARAMS = ['srv', ...OPTION_PARAMS];

function isSrvName(name: string): boolean {
  const [service, protocol] = name.split('.');
  return (
    service !== undefined &&
    service.startsWith('_') &&
    (protocol?.toLowerCase() === '_tcp' || protocol?.toLowerCase() === '_udp')
  );
}

function parseParams(query: string, original: string): Map<string, string> {
  const params = new Map<string, string>();
  if (query === '') return params;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new TargetError(original, `parameter "${pair}" is not name=value`);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(pair.slice(0, eq));
      value = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      throw new TargetError(original, `parameter "${pair}" has a malformed percent-escape`);
    }
    if (isSecretName(name)) {
      throw new TargetError(
        original,
        `parameter "${name}": credentials do not belong in a target (targets are logged), and DNS takes none`,
      );
    }
    if (!KNOWN_PARAMS.includes(name)) {
      throw new TargetError(
        original,
        `unknown parameter "${name}" (known: ${KNOWN_PARAMS.join(', ')})`,
      );
    }
    if (params.has(name)) throw new TargetError(original, `parameter ${name} is given twice`);
    params.set(name, value);
  }
  return params;
}

function parseServer(authority: string, original: string): DnsServerAddress {
  const { host, port } = parseHostPort(authority, original, 'DNS server');
  if (isIP(host) === 0) {
    throw new TargetError(
      original,
      `DNS server "${authority}" must be an IP address (a name would need DNS to find DNS)`,
    );
  }
  return { host, port: port ?? DNS_PORT };
}

/** Parses `scheme:[//dns-server/]host[:port][?params]`; throws `TargetError` naming the part. */
export function parseDnsTarget(uri: TargetUri, written: string): DnsTarget {
  const original = redactSecrets(written);
  if (uri.authority?.includes('@') || /^[^?]*@/.test(uri.path)) {
    throw new TargetError(
      original,
      'userinfo ("user:password@") is not allowed in a DNS target: DNS takes no credentials, and targets are logged; send call credentials to the backends instead',
    );
  }
  const at = uri.path.indexOf('?');
  const hostPart = at < 0 ? uri.path : uri.path.slice(0, at);
  const params = parseParams(at < 0 ? '' : uri.path.slice(at + 1), original);
  // `dns:///` and `dns://server/` leave "///" and "//server/" as the path (nothing follows).
  if (/^\/*$|^\/\/[^/]*\/$/.test(hostPart)) {
    throw new TargetError(original, 'a DNS target needs a host name: host:port');
  }
  if (hostPart.startsWith('//')) {
    throw new TargetError(
      original,
      `expected ${uri.scheme}:///host:port (three slashes) or ${uri.scheme}://dns-server/host:port`,
    );
  }
  if (hostPart === '') {
    throw new TargetError(original, 'a DNS target needs a host name: host:port');
  }
  const { host, port } = parseHostPort(hostPart, original, 'host');
  const server =
    uri.authority === undefined || uri.authority === ''
      ? undefined
      : parseServer(uri.authority, original);
  const options = optionsFromParams(params, original);
  const srvParam = params.get('srv');

  if (isIP(host) !== 0) {
    if (srvParam !== undefined) {
      throw new TargetError(original, `parameter srv needs a host name, not the address ${host}`);
    }
    const bracketed = isIP(host) === 6 ? `[${host}]` : host;
    const authority = port === undefined ? bracketed : formatHostPort(host, port);
    return {
      original,
      kind: 'ip',
      name: host,
      absolute: true,
      port: port ?? DEFAULT_PORT,
      server,
      authority,
      options,
    };
  }

  const absolute = host.endsWith('.');
  let name = absolute ? host.slice(0, -1) : host;
  if (name === '') throw new TargetError(original, 'a DNS target needs a host name: host:port');
  let baseName = name;
  let kind: DnsTarget['kind'] = 'address';
  if (isSrvName(name)) {
    if (srvParam !== undefined) {
      throw new TargetError(
        original,
        `"${name}" is already an SRV name: drop parameter srv, or write the plain host name`,
      );
    }
    kind = 'srv';
    baseName = name.split('.').slice(2).join('.');
    if (baseName === '') throw new TargetError(original, `SRV name "${name}" has no domain`);
  } else if (srvParam !== undefined) {
    if (!PORT_NAME.test(srvParam)) {
      throw new TargetError(
        original,
        `parameter srv "${srvParam}" is not a port name (letters, digits and "-", as in a Service's named port)`,
      );
    }
    kind = 'srv';
    name = `_${srvParam}._tcp.${name}`;
  }
  if (kind === 'srv' && port !== undefined) {
    throw new TargetError(
      original,
      `an SRV target takes its ports from the SRV records: remove ":${port}"`,
    );
  }
  return {
    original,
    kind,
    name,
    absolute,
    port: kind === 'srv' ? undefined : (port ?? DEFAULT_PORT),
    server,
    authority: port === undefined ? baseName : `${baseName}:${port}`,
    options,
  };
}
