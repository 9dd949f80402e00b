import { TargetError } from './errors';
import { formatHostPort, MAX_WEIGHT } from './endpoint';
import type {
  EndpointResolver,
  ResolvedEndpoint,
  ResolverFactory,
  TargetUri,
} from './resolver-contract';
import { isSecretName } from './redact';
import { parseHostPort } from './target-uri';

/**
 * `static:` — a fixed endpoint list written in the target itself.
 *
 *     static:///127.0.0.2:50051,127.0.0.3:50051
 *     static:///127.0.0.2:50051;version=v1;weight=3,[::1]:50051;version=v2;zone=b
 *     static://hello.prod/10.0.0.1:50051,10.0.0.2:50051     (authority = default :authority)
 *
 * Each endpoint is `host:port` followed by `;key=value` attributes: `weight`
 * (a number 0–1000000, default 1; 0 = known but sent no traffic), `zone`, and
 * any other key is a label. Values are percent-decoded.
 *
 * Credentials are refused, since a target is logged and its authority becomes the `:authority`
 * header: userinfo in the authority (`static://user:token@name/…`), and labels whose name announces
 * a secret (`token`, `password`, `secret`, `api_key`, … — see `isSecretName`). Send credentials as
 * call credentials (`grpc.credentials.createFromMetadataGenerator`) instead.
 */
export interface StaticTarget {
  readonly authority: string | undefined;
  readonly endpoints: readonly ResolvedEndpoint[];
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,252}$/;

function decode(value: string, target: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new TargetError(target, `${what} "${value}" has a malformed percent-escape`);
  }
}

export function parseStaticTarget(uri: TargetUri, original: string): StaticTarget {
  if (uri.authority?.includes('@')) {
    throw new TargetError(
      original,
      'userinfo ("user:password@") is not allowed in a target authority: it would be sent as the :authority header and logged; send credentials as call credentials instead',
    );
  }
  const parts = uri.path.split(',');
  // `static:///` and `static://name/` leave "///" and "//name/" as the path:
  // an authority with nothing after it does not split off.
  if (/^\/\/[^/]*\/?$|^\/*$/.test(uri.path) || parts.every((p) => p === '')) {
    throw new TargetError(original, 'a static target needs at least one host:port');
  }
  const endpoints: ResolvedEndpoint[] = [];
  const seen = new Set<string>();
  parts.forEach((part, index) => {
    const what = `endpoint ${index + 1}`;
    if (part === '') throw new TargetError(original, `${what} is empty (stray comma?)`);
    const [address = '', ...attributes] = part.split(';');
    const { host, port } = parseHostPort(address, original, what);
    if (port === undefined) throw new TargetError(original, `${what} "${address}" has no port`);
    const key = formatHostPort(host, port);
    if (seen.has(key)) throw new TargetError(original, `${what} "${key}" is listed twice`);
    seen.add(key);
    let weight: number | undefined;
    let zone: string | undefined;
    const labels: Record<string, string> = {};
    for (const attribute of attributes) {
      const eq = attribute.indexOf('=');
      if (eq <= 0) {
        throw new TargetError(
          original,
          `${what} "${key}": attribute "${attribute}" is not name=value`,
        );
      }
      const name = attribute.slice(0, eq);
      // Before the value is decoded: a decoding error would quote it.
      if (LABEL_KEY.test(name) && isSecretName(name)) {
        throw new TargetError(
          original,
          `${what} "${key}": a label named "${name}" would hold a secret, and labels are logged and reported: send credentials as call credentials instead, or rename the label`,
        );
      }
      const value = decode(attribute.slice(eq + 1), original, `${what} "${key}" attribute ${name}`);
      if (name === 'weight') {
        const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
        if (!(n >= 0 && n <= MAX_WEIGHT)) {
          throw new TargetError(
            original,
            `${what} "${key}": weight "${value}" is not a number 0-${MAX_WEIGHT}`,
          );
        }
        weight = n;
      } else if (name === 'zone') {
        zone = value;
      } else if (LABEL_KEY.test(name) && name !== '__proto__') {
        if (name in labels)
          throw new TargetError(original, `${what} "${key}": label "${name}" is set twice`);
        labels[name] = value;
      } else {
        throw new TargetError(original, `${what} "${key}": "${name}" is not a valid label name`);
      }
    }
    endpoints.push({
      host,
      port,
      labels,
      ...(weight === undefined ? {} : { weight }),
      ...(zone === undefined ? {} : { zone }),
    });
  });
  return { authority: uri.authority === '' ? undefined : uri.authority, endpoints };
}

class StaticResolver implements EndpointResolver {
  constructor(private readonly endpoints: readonly ResolvedEndpoint[]) {}
  start(sink: Parameters<EndpointResolver['start']>[0]): void {
    sink.update({ endpoints: this.endpoints, note: `${this.endpoints.length} static endpoints` });
  }
  refresh(): void {
    // A static list never changes; the adapter already holds it.
  }
  stop(): void {}
}

export const staticResolverFactory: ResolverFactory<StaticTarget> = {
  scheme: 'static',
  parseTarget: parseStaticTarget,
  defaultAuthority(parsed) {
    if (parsed.authority !== undefined) return parsed.authority;
    const first = parsed.endpoints[0]!;
    return formatHostPort(first.host, first.port);
  },
  create(parsed) {
    return new StaticResolver(parsed.endpoints);
  },
};
