import { CompositeResolver } from './composite-resolver';
import { TargetError } from './errors';
import { redactSecrets } from './redact';
import type { ResolverFactory, TargetUri } from './resolver-contract';
import { parseTargetUri } from './target-uri';

/**
 * `composite:` — one channel over the union of several sources, each a
 * target of any registered scheme:
 *
 *     composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc
 *     composite:///hello?vms=etcd:///services/hello&pods=k8s:///hello.prod:grpc?config=hello-lb&weight.vms=2
 *
 * - The path before `?` is the service's name, used as the default
 *   `:authority` (empty: the first source's).
 * - Each `name=target` is a source, in order. A name is a DNS label
 *   (`[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters); it becomes the
 *   label `source=<name>` of every endpoint the source finds, so
 *   `grpc-lb.traffic_split` subsets can select a source as they select a
 *   version. The value is percent-decoded once: a `&` inside a source's own
 *   target is written `%26` (a `?` needs no escape).
 * - `weight.<name>=N` (an integer 0–1000, default 1) multiplies the weight of
 *   every endpoint of that source; 0 keeps them known and connected but sent
 *   no calls by the weighted policies.
 */
export const COMPOSITE_SCHEME = 'composite';

export const MAX_SOURCES = 16;
export const MAX_SOURCE_WEIGHT = 1_000;
const SOURCE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SERVICE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?::\d{1,5})?$/;

export interface CompositeSource {
  readonly name: string;
  /** The source's target as written (decoded). */
  readonly target: string;
  /** The same, with anything secret-like replaced, for messages. */
  readonly shown: string;
  readonly uri: TargetUri;
  readonly factory: ResolverFactory;
  readonly parsed: unknown;
  readonly weight: number;
}

export interface CompositeTarget {
  /** The service name given in the path, or '' for none. */
  readonly service: string;
  readonly sources: readonly CompositeSource[];
}

/** How the composite finds the resolvers of its sources' schemes. */
export interface SchemeLookup {
  get(scheme: string): ResolverFactory | undefined;
  /** Every scheme available, for the error naming an unknown one. */
  schemes(): readonly string[];
}

function decode(value: string, original: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new TargetError(original, `${what} has a malformed percent-escape`);
  }
}

/** The problem a nested TargetError states, without its own `invalid target "…": ` prefix. */
function problemOf(error: unknown): string {
  if (error instanceof TargetError) {
    const prefix = `invalid target "${error.target}": `;
    return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

const EXAMPLE = 'composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc';

export function parseCompositeTarget(
  uri: TargetUri,
  original: string,
  lookup: SchemeLookup,
): CompositeTarget {
  if (uri.authority) {
    throw new TargetError(
      original,
      `a composite target takes no authority: put the service name in the path (${EXAMPLE})`,
    );
  }
  const q = uri.path.indexOf('?');
  if (q < 0) {
    throw new TargetError(original, `a composite target needs sources after "?" (${EXAMPLE})`);
  }
  const service = decode(uri.path.slice(0, q), original, 'the service name');
  if (service !== '' && !SERVICE_NAME.test(service)) {
    throw new TargetError(
      original,
      `the service name "${service}" is not a host name (it becomes the :authority of calls)`,
    );
  }
  const query = uri.path.slice(q + 1);
  const sources: CompositeSource[] = [];
  const weights = new Map<string, number>();
  const names = new Set<string>();
  for (const [index, part] of query.split('&').entries()) {
    const at = `parameter ${index + 1}`;
    if (part === '') throw new TargetError(original, `${at} is empty (a stray "&"?)`);
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new TargetError(
        original,
        `${at} "${part}" is not name=target (a source is written vms=consul:///hello)`,
      );
    }
    const key = part.slice(0, eq);
    const value = decode(part.slice(eq + 1), original, `the value of "${key}"`);
    if (key.startsWith('weight.')) {
      const name = key.slice('weight.'.length);
      if (weights.has(name)) throw new TargetError(original, `"${key}" is given twice`);
      if (!/^\d{1,4}$/.test(value) || Number(value) > MAX_SOURCE_WEIGHT) {
        throw new TargetError(
          original,
          `"${key}" must be an integer from 0 to ${MAX_SOURCE_WEIGHT}, got "${value}"`,
        );
      }
      weights.set(name, Number(value));
      continue;
    }
    if (!SOURCE_NAME.test(key)) {
      throw new TargetError(
        original,
        `unknown parameter "${key}": a source name is a lower-case DNS label (vms, pods-eu), and a "&" inside a source's own target is written %26`,
      );
    }
    if (names.has(key)) throw new TargetError(original, `source "${key}" is given twice`);
    names.add(key);
    sources.push({ ...parseSource(key, value, original, lookup, index === 0), weight: 1 });
  }
  if (sources.length === 0) {
    throw new TargetError(original, `a composite target needs at least one source (${EXAMPLE})`);
  }
  if (sources.length > MAX_SOURCES) {
    throw new TargetError(original, `at most ${MAX_SOURCES} sources, got ${sources.length}`);
  }
  for (const name of weights.keys()) {
    if (!names.has(name)) {
      throw new TargetError(
        original,
        `"weight.${name}" names no source (sources: ${[...names].join(', ')})`,
      );
    }
  }
  return {
    service,
    sources: sources.map((s) => ({ ...s, weight: weights.get(s.name) ?? 1 })),
  };
}

function parseSource(
  name: string,
  target: string,
  original: string,
  lookup: SchemeLookup,
  first: boolean,
): Omit<CompositeSource, 'weight'> {
  const what = `source "${name}"`;
  let uri: TargetUri;
  try {
    uri = parseTargetUri(target);
  } catch (error) {
    const hint = first
      ? ''
      : `; if "${name}=…" belongs to the target of the source before it, write its "&" as %26`;
    throw new TargetError(original, `${what}: ${problemOf(error)}${hint}`);
  }
  if (uri.scheme === COMPOSITE_SCHEME) {
    throw new TargetError(original, `${what}: a composite source cannot itself be composite`);
  }
  const factory = lookup.get(uri.scheme);
  if (!factory) {
    throw new TargetError(
      original,
      `${what}: unknown scheme "${uri.scheme}:" (registered: ${lookup
        .schemes()
        .filter((s) => s !== COMPOSITE_SCHEME)
        .join(', ')})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = factory.parseTarget(uri, target);
  } catch (error) {
    throw new TargetError(original, `${what}: ${problemOf(error)}`);
  }
  return { name, target, shown: redactSecrets(target), uri, factory, parsed };
}

/** The `composite:` resolver factory, resolving its sources' schemes through `lookup`. */
export function createCompositeResolverFactory(
  lookup: SchemeLookup,
): ResolverFactory<CompositeTarget> {
  return {
    scheme: COMPOSITE_SCHEME,
    parseTarget: (uri, original) => parseCompositeTarget(uri, original, lookup),
    defaultAuthority(parsed) {
      if (parsed.service !== '') return parsed.service;
      const first = parsed.sources[0]!;
      return first.factory.defaultAuthority(first.parsed, first.uri);
    },
    create: (parsed, context) => new CompositeResolver(parsed, context),
  };
}
