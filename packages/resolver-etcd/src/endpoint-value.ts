import { formatHostPort, parseHostPort, TargetError, type ResolvedEndpoint } from '@grpc-lb/core';

/**
 * The values under `<service>/<id>`, as etcd's Go gRPC naming writes them
 * (go.etcd.io/etcd/client/v3/naming/endpoints):
 *
 *     {"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"labels":{"version":"v2"},"weight":3,"zone":"a"}}
 *
 * or a plain `10.0.0.7:50051` (go-zero). A removal is a key deletion (or the key's lease
 * expiring), never a value.
 */
export type ParsedValue =
  | {
      readonly ok: true;
      readonly endpoint: ResolvedEndpoint;
      /** Metadata fields left out because of their shape, each named (the address is still used). */
      readonly problems?: readonly string[];
    }
  | { readonly ok: false; readonly problem: string };

/** What a registration writes beside the address. */
export interface EndpointMetadata {
  /** Labels for subsets and routes (`version=v2`). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Relative weight for the weighted policies, an integer 0–1,000,000. */
  readonly weight?: number;
  readonly zone?: string;
}

/**
 * Weight, zone and labels read from `Metadata`. A field of an unexpected shape is left out and
 * named in `problems`: the entry's address is used all the same, as etcd's Go resolver (which
 * reads only `Addr`) would.
 */
export interface MetadataFields {
  readonly ok: true;
  readonly weight?: number;
  readonly zone?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** One sentence per field left out, naming it (`Metadata weight "high" is not …`). */
  readonly problems?: readonly string[];
}

const MAX_WEIGHT = 1_000_000;

function fail(problem: string): ParsedValue {
  return { ok: false, problem };
}

/** The own property of `object` whose name equals `name` ignoring case, as Go's encoding/json matches fields. */
function field(object: Record<string, unknown>, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(object, name)) return object[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(object)) {
    if (key.toLowerCase() === lower) return object[key];
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function labelValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

const RESERVED = new Set(['weight', 'zone', 'labels']);

/** The name `name` has in `object` (its own spelling, as matched by `field`). */
function spelling(object: Record<string, unknown>, name: string): string {
  if (Object.prototype.hasOwnProperty.call(object, name)) return name;
  const lower = name.toLowerCase();
  return Object.keys(object).find((key) => key.toLowerCase() === lower) ?? name;
}

const MAX_SHOWN_FIELD = 60;

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > MAX_SHOWN_FIELD ? `${text.slice(0, MAX_SHOWN_FIELD)}…` : text;
}

/**
 * Metadata → weight, zone and labels (see the README for the mapping):
 * - `weight` (a number or a numeric string, integer 0–1,000,000) and `zone` (a string);
 * - `labels`: an object whose string, number and boolean values become labels;
 * - every other top-level string, number or boolean is a label too (a flat map such as
 *   `{"version":"v2"}`); `labels` wins over a flat key of the same name;
 * - names are matched ignoring case (`Weight` from a Go struct); nested objects, arrays and null
 *   at the top level are ignored, and so is metadata that is not an object (Go's `Metadata` is
 *   free-form).
 * A `weight`, `zone`, `labels` or label value of another shape is left out and named in
 * `problems`; the rest is still read.
 */
export function metadataToEndpointFields(metadata: unknown): MetadataFields {
  if (!isObject(metadata)) return { ok: true };
  const result: {
    ok: true;
    weight?: number;
    zone?: string;
    labels?: Record<string, string>;
    problems?: string[];
  } = { ok: true };
  const problems: string[] = [];
  const weight = field(metadata, 'weight');
  if (weight !== undefined && weight !== null) {
    const number =
      typeof weight === 'string' && /^\s*\d+\s*$/.test(weight) ? Number(weight) : weight;
    if (
      typeof number !== 'number' ||
      !Number.isInteger(number) ||
      number < 0 ||
      number > MAX_WEIGHT
    ) {
      problems.push(
        `Metadata ${spelling(metadata, 'weight')} ${shown(weight)} is not an integer 0-${MAX_WEIGHT}`,
      );
    } else {
      result.weight = number;
    }
  }
  const zone = field(metadata, 'zone');
  if (zone !== undefined && zone !== null) {
    if (typeof zone !== 'string') {
      problems.push(`Metadata ${spelling(metadata, 'zone')} ${shown(zone)} is not a string`);
    } else if (zone !== '') {
      result.zone = zone;
    }
  }
  const labels: Record<string, string> = {};
  let count = 0;
  const add = (name: string, value: unknown): boolean => {
    const text = labelValue(value);
    if (text === undefined) return false;
    if (name === '' || name === '__proto__') return true;
    labels[name] = text;
    count++;
    return true;
  };
  for (const [name, value] of Object.entries(metadata)) {
    if (!RESERVED.has(name.toLowerCase())) add(name, value);
  }
  const nested = field(metadata, 'labels');
  if (isObject(nested)) {
    const name = spelling(metadata, 'labels');
    for (const [label, value] of Object.entries(nested)) {
      if (!add(label, value)) problems.push(`Metadata ${name}.${label} is not a string`);
    }
  } else if (nested !== undefined && nested !== null) {
    problems.push(`Metadata ${spelling(metadata, 'labels')} ${shown(nested)} is not an object`);
  }
  if (count > 0) result.labels = labels;
  if (problems.length > 0) result.problems = problems;
  return result;
}

function parseAddress(text: string): { host: string; port: number } | string {
  try {
    const { host, port } = parseHostPort(text, text, 'address');
    if (port === undefined) return `address ${JSON.stringify(text)} has no port`;
    return { host, port };
  } catch (error) {
    const prefix = `invalid target "${text}": `;
    const message = error instanceof TargetError ? error.message : String(error);
    return message.startsWith(prefix) ? message.slice(prefix.length) : message;
  }
}

/** Reads one value; never throws. */
export function parseEndpointValue(value: string): ParsedValue {
  const text = value.trim();
  if (text === '') return fail('the value is empty');
  if (!text.startsWith('{')) {
    if (text.startsWith('"')) {
      let inner: unknown;
      try {
        inner = JSON.parse(text);
      } catch {
        return fail('the value is not valid JSON');
      }
      return typeof inner === 'string' ? parseEndpointValue(inner) : fail('unexpected JSON value');
    }
    const address = parseAddress(text);
    if (typeof address === 'string') {
      return fail(`not etcd naming JSON and not host:port: ${address}`);
    }
    return { ok: true, endpoint: address };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return fail(
      `the value is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (!isObject(json)) return fail('the value is not a JSON object');
  const op = field(json, 'Op');
  if (op !== undefined && op !== null && op !== 0) {
    return fail(`Op ${JSON.stringify(op)} is not 0 (Add): a removal is a key deletion`);
  }
  const addr = field(json, 'Addr');
  if (typeof addr !== 'string' || addr === '') return fail('no "Addr" string');
  const address = parseAddress(addr);
  if (typeof address === 'string') return fail(`Addr: ${address}`);
  const fields = metadataToEndpointFields(field(json, 'Metadata'));
  const endpoint: {
    host: string;
    port: number;
    weight?: number;
    zone?: string;
    labels?: Readonly<Record<string, string>>;
  } = { host: address.host, port: address.port };
  if (fields.weight !== undefined) endpoint.weight = fields.weight;
  if (fields.zone !== undefined) endpoint.zone = fields.zone;
  if (fields.labels !== undefined) endpoint.labels = fields.labels;
  return fields.problems
    ? { ok: true, endpoint, problems: fields.problems }
    : { ok: true, endpoint };
}

/**
 * The value a registration writes: etcd naming's JSON, in the field order Go writes it.
 * `Metadata` is `null` when there is nothing to say, as Go writes a nil interface. `metadata`
 * given as anything but an `EndpointMetadata`-like object is written as is (your own shape).
 */
export function formatEndpointValue(host: string, port: number, metadata?: unknown): string {
  return JSON.stringify({ Op: 0, Addr: formatHostPort(host, port), Metadata: metadata ?? null });
}

/** `{labels, weight, zone}` with empty parts left out, or null when all are empty. */
export function metadataOf(meta: EndpointMetadata): EndpointMetadata | null {
  const out: { labels?: Readonly<Record<string, string>>; weight?: number; zone?: string } = {};
  if (meta.labels && Object.keys(meta.labels).length > 0) out.labels = { ...meta.labels };
  if (meta.weight !== undefined) out.weight = meta.weight;
  if (meta.zone !== undefined && meta.zone !== '') out.zone = meta.zone;
  return Object.keys(out).length > 0 ? out : null;
}
