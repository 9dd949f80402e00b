import { IstioTranslationError } from './errors';

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `"${value}"`;
  return typeof value === 'function' || typeof value === 'symbol'
    ? typeof value
    : `${value as number}`;
}

/**
 * A place in a resource: the resource's name and a field path in its spec
 * (`http[0].route[1].weight`). Reading helpers throw `IstioTranslationError`
 * naming both; `note` records a warning naming both.
 */
export class At {
  constructor(
    readonly resource: string,
    readonly path: string,
    private readonly warnings: string[],
  ) {}

  key(name: string): At {
    return new At(this.resource, this.path ? `${this.path}.${name}` : name, this.warnings);
  }

  index(i: number): At {
    return new At(this.resource, `${this.path}[${i}]`, this.warnings);
  }

  fail(problem: string, code: 'BAD_RESOURCE' | 'UNUSABLE_RESOURCE' = 'BAD_RESOURCE'): never {
    throw new IstioTranslationError(code, this.resource, this.path, problem);
  }

  note(message: string): void {
    this.warnings.push(`${this.resource}: ${this.path || '(resource)'}: ${message}`);
  }

  object(value: unknown): Json {
    if (!isObject(value)) this.fail(`expected an object, got ${describe(value)}`);
    return value;
  }

  list(value: unknown): unknown[] {
    if (!Array.isArray(value)) this.fail(`expected a list, got ${describe(value)}`);
    return value;
  }

  string(value: unknown): string {
    if (typeof value !== 'string') this.fail(`expected a string, got ${describe(value)}`);
    return value;
  }

  integer(value: unknown, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(`expected an integer ${min}-${max}, got ${describe(value)}`);
    }
    return value;
  }

  /** A number (Istio's percentages are doubles in some fields, integers in others). */
  number(value: unknown, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.fail(`expected a number ${min}-${max}, got ${describe(value)}`);
    }
    return value;
  }
}

/** Fields of `obj` not in `known`, in the order written. */
export function otherFields(obj: Json, known: readonly string[]): string[] {
  return Object.keys(obj).filter((k) => !known.includes(k) && obj[k] !== undefined);
}

/** `a.b, a.c, d` — the leaf paths of the fields set in an object (two levels), for warnings. */
export function leafPaths(value: unknown, prefix = ''): string[] {
  if (!isObject(value)) return [prefix];
  const paths: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (isObject(v) && prefix === '') paths.push(...leafPaths(v, path));
    else paths.push(path);
  }
  return paths.length > 0 ? paths : [prefix];
}
