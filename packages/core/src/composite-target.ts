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
 *     composite:///hello?vms=etcd:///services/hello&pods=k8s:///hello.prod:grpc?config=hello-lb&source=endpoints&weight.vms=2
 *
 * - The path before `?` is the service's name, used as the default
 *   `:authority` (empty: the first source's).
 * - Each `name=target` is a source, in order. A name is a DNS label
 *   (`[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters); it becomes the
 *   label `source=<name>` of every endpoint the source finds, so
 *   `grpc-lb.traffic_split` subsets can select a source as they select a
 *   version. A source's target keeps its own `?` and `&` parameters: a `&`
 *   starts the next source only before `name=<registered scheme>:` (or
 *   `weight.`). The value is percent-decoded once; `%26` is a `&` that never
 *   splits.
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
  for (const [index, part] of splitParameters(query, lookup).entries()) {
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
        `"${key}" is not a source name: a source name is a lower-case DNS label (vms, pods-eu)`,
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

/** `name=scheme:` at the start of a parameter: a source, when the scheme is known or `:/` follows. */
const SOURCE_START = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)=([A-Za-z][A-Za-z0-9+.-]*):(\/)?/;

/**
 * The composite's own parameters. A `&` starts one only when what follows is `weight.…=` or a new
 * source, `name=scheme:` with a registered scheme (or any scheme followed by `/`, so that a
 * misspelt scheme is reported as such); any other `&key=value` belongs to the target of the
 * source before it (`vms=consul:///hello?tag=v2&dc=dc2&pods=k8s:///…`). `%26` is always part of
 * a value.
 */
function splitParameters(query: string, lookup: SchemeLookup): string[] {
  const parts: string[] = [];
  for (const piece of query.split('&')) {
    const previous = parts.length - 1;
    const startsSource = (): boolean => {
      const m = SOURCE_START.exec(piece);
      return (
        m !== null &&
        (m[3] !== undefined || m[2] === COMPOSITE_SCHEME || lookup.get(m[2]!) !== undefined)
      );
    };
    const continues =
      previous >= 0 &&
      piece !== '' &&
      !piece.startsWith('weight.') &&
      !startsSource() &&
      // Only a source's target takes parameters of its own.
      !parts[previous]!.startsWith('weight.');
    if (continues) parts[previous] += `&${piece}`;
    else parts.push(piece);
  }
  return parts;
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
      : `; a source's own parameters follow its target, before any weight.… parameter`;
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

/**
 * Writes a composite target from its parts, escaping what the syntax needs (`%` and `&` in a
 * source's target), so configuration code need not:
 *
 *     compositeTarget({ service: 'hello', sources: { vms: 'consul:///hello?tag=a&dc=b', pods: 'k8s:///hello.prod:grpc' } })
 *     // 'composite:///hello?vms=consul:///hello?tag=a%26dc=b&pods=k8s:///hello.prod:grpc'
 *
 * Sources keep the order of `sources`. Names and weights are checked here; each source's target
 * is checked by its scheme when a client is created (or by `validateTarget`).
 */
export function compositeTarget(parts: {
  readonly service?: string;
  readonly sources: Readonly<Record<string, string>>;
  readonly weights?: Readonly<Record<string, number>>;
}): string {
  const escape = (text: string): string => text.replace(/%/g, '%25').replace(/&/g, '%26');
  const params: string[] = [];
  for (const [name, target] of Object.entries(parts.sources)) {
    if (!SOURCE_NAME.test(name)) {
      throw new TargetError(name, 'a source name is a lower-case DNS label (vms, pods-eu)');
    }
    params.push(`${name}=${escape(target)}`);
    const weight = parts.weights?.[name];
    if (weight !== undefined) {
      if (!Number.isInteger(weight) || weight < 0 || weight > MAX_SOURCE_WEIGHT) {
        throw new TargetError(
          `weight.${name}`,
          `must be an integer from 0 to ${MAX_SOURCE_WEIGHT}, got ${String(weight)}`,
        );
      }
      params.push(`weight.${name}=${weight}`);
    }
  }
  for (const name of Object.keys(parts.weights ?? {})) {
    if (!(name in parts.sources)) throw new TargetError(`weight.${name}`, 'names no source');
  }
  if (params.length === 0) throw new TargetError('composite:', 'needs at least one source');
  return `${COMPOSITE_SCHEME}:///${escape(parts.service ?? '')}?${params.join('&')}`;
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
