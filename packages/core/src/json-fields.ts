/**
 * Reading the JSON bodies of our policies' configs, one way for every
 * policy: a field is read under its camelCase name (grpc-go, proto JSON) or
 * its snake_case twin (grpc-js's built-in policies), never both; every
 * rejection is a `ConfigError` naming the field path; and an unknown field
 * is handled as the caller says — rejected, or skipped and reported.
 *
 * Skipping exists for configs that come from a registry: clients of several
 * versions read the same stored config, and one older than the config's
 * author must not refuse the whole config for a field it has never heard of.
 */
import { ConfigError, describe } from './errors';

export type Json = Record<string, unknown>;

/** How a parse treats a field it does not know. */
export type ParseContext =
  | { readonly unknownFields: 'reject' }
  | {
      readonly unknownFields: 'ignore';
      /** Called once for each unknown field skipped: its path, and where it sits (to strip it). */
      readonly onIgnored: (path: string, container: Json, key: string) => void;
    };

/** Unknown fields are errors: the default, and always for the channel option. */
export const STRICT: ParseContext = Object.freeze({ unknownFields: 'reject' });

/** `minimumHosts` → `minimum_hosts`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function isJsonObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One JSON object being read; field names are given in camelCase and also found in snake_case. */
export class Fields {
  private constructor(
    readonly json: Json,
    readonly path: string,
    readonly ctx: ParseContext,
  ) {}

  /** Throws `ConfigError` at `path` unless `value` is a JSON object. */
  static of(value: unknown, path: string, ctx: ParseContext = STRICT): Fields {
    if (!isJsonObject(value)) {
      throw new ConfigError(path, `expected an object, got ${describe(value)}`);
    }
    return new Fields(value, path, ctx);
  }

  /** The key `name` is written under here (its snake_case twin if that is the one given). */
  key(name: string): string {
    const snake = snakeCase(name);
    return snake !== name && Object.hasOwn(this.json, snake) ? snake : name;
  }

  has(name: string): boolean {
    return Object.hasOwn(this.json, name) || Object.hasOwn(this.json, snakeCase(name));
  }

  /** The path of field `name` as written. */
  at(name: string): string {
    return `${this.path}.${this.key(name)}`;
  }

  /** The raw value of `name` (camelCase or snake_case), `undefined` when absent. */
  get(name: string): unknown {
    const snake = snakeCase(name);
    if (snake !== name && Object.hasOwn(this.json, name) && Object.hasOwn(this.json, snake)) {
      throw new ConfigError(`${this.path}.${name}`, `given twice (also as ${snake})`);
    }
    const key = this.key(name);
    return Object.hasOwn(this.json, key) ? this.json[key] : undefined;
  }

  /** `parse(value, path)` of field `name`, or `undefined` when it is absent. */
  read<T>(name: string, parse: (value: unknown, path: string) => T): T | undefined {
    const value = this.get(name);
    return value === undefined ? undefined : parse(value, this.at(name));
  }

  /**
   * Checks that every key is one of `names` (or a snake_case twin): any
   * other is a `ConfigError`, or in an `ignore` context reported and skipped.
   * `expected` overrides the list of names given in the error.
   */
  only(names: readonly string[], expected?: string): void {
    const allowed = new Set(names.flatMap((name) => [name, snakeCase(name)]));
    for (const key of Object.keys(this.json)) {
      if (allowed.has(key)) continue;
      const path = `${this.path}.${key}`;
      if (this.ctx.unknownFields === 'ignore') {
        this.ctx.onIgnored(path, this.json, key);
        continue;
      }
      const hint = expected ?? (names.length > 0 ? `expected one of ${names.join(', ')}` : '');
      throw new ConfigError(path, hint ? `unknown field (${hint})` : 'unknown field');
    }
  }
}

export function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value))
    throw new ConfigError(path, `expected an array, got ${describe(value)}`);
  return value;
}

export function nonEmptyString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(path, `expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

export function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ConfigError(
      path,
      `expected one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(value)}`,
    );
  }
  return value as T;
}

export function integer(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      path,
      `expected an integer ${min}-${max}, got ${describe(value)}${typeof value === 'number' ? ` ${value}` : ''}`,
    );
  }
  return value;
}

export function percentage(value: unknown, path: string): number {
  return integer(value, path, 0, 100);
}

const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;

/** "10s", "0.25s" (grpc-go, proto JSON) or {seconds, nanos} (grpc-js) → milliseconds. */
export function parseDurationMs(value: unknown, path: string, ctx: ParseContext = STRICT): number {
  if (typeof value === 'string') {
    const match = DURATION.exec(value);
    if (!match)
      throw new ConfigError(path, `expected a duration like "10s" or "0.5s", got "${value}"`);
    return Number(match[1]) * 1000 + Number((match[2] ?? '').padEnd(9, '0')) / 1e6;
  }
  if (isJsonObject(value)) {
    const fields = Fields.of(value, path, ctx);
    fields.only(['seconds', 'nanos'], 'expected seconds, nanos');
    const seconds = fields.get('seconds') ?? 0;
    const nanos = fields.get('nanos') ?? 0;
    const s = typeof seconds === 'string' && /^\d+$/.test(seconds) ? Number(seconds) : seconds;
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) {
      throw new ConfigError(
        `${path}.seconds`,
        `expected a non-negative integer, got ${describe(seconds)}`,
      );
    }
    if (typeof nanos !== 'number' || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
      throw new ConfigError(
        `${path}.nanos`,
        `expected an integer 0-999999999, got ${describe(nanos)}`,
      );
    }
    return s * 1000 + nanos / 1e6;
  }
  throw new ConfigError(
    path,
    `expected a duration ("10s" or {"seconds": 10}), got ${describe(value)}`,
  );
}
