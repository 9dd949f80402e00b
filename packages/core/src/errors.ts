/**
 * Typed errors. Each carries a string `code` so callers can branch without
 * `instanceof`, and a brand so `instanceof` still works when an application
 * ends up with two copies of this package.
 */

import { redactSecrets } from './redact';

const KINDS = Symbol.for('@grpc-lb/core.GrpcLbError.kinds');

/** Class names from `ctor` up to GrpcLbError: what `instanceof` checks against. */
function kindsOf(ctor: unknown): string[] {
  const kinds: string[] = [];
  for (
    let c = ctor as { name?: string } | null;
    c && c !== Function.prototype;
    c = Object.getPrototypeOf(c) as typeof c
  ) {
    if (typeof c.name === 'string' && c.name) kinds.push(c.name);
    if (c.name === 'GrpcLbError') break;
  }
  return kinds;
}

export type GrpcLbErrorCode =
  | 'BAD_TARGET'
  | 'BAD_CONFIG'
  | 'BAD_ENDPOINT'
  | 'UNSUPPORTED_GRPC_JS'
  | 'REGISTRATION_FAILED'
  | 'RESOLUTION_FAILED';

export class GrpcLbError extends Error {
  readonly code: GrpcLbErrorCode;

  constructor(code: GrpcLbErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'GrpcLbError';
    Object.defineProperty(this, KINDS, { value: kindsOf(new.target) });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    const kinds = (value as Record<symbol, unknown>)[KINDS];
    return Array.isArray(kinds) && kinds.includes(this.name);
  }
}

/**
 * A target URI that cannot be used: names the target and the part that is wrong. Both go through
 * `redactSecrets`, so userinfo, `token=`-like values and Bearer tokens never appear in the message
 * or in `target`, whichever parser throws it.
 */
export class TargetError extends GrpcLbError {
  /** The target as written, with its secrets replaced by `***`. */
  readonly target: string;
  constructor(target: string, problem: string) {
    const shown = redactSecrets(String(target));
    super('BAD_TARGET', `invalid target "${shown}": ${redactSecrets(String(problem))}`);
    this.name = 'TargetError';
    this.target = shown;
  }
}

/**
 * A configuration that cannot be used: names the field path, e.g.
 * `loadBalancingConfig[0].grpc-lb.round_robin`. The problem goes through `redactSecrets`, since it
 * may quote an address setting (`CONSUL_HTTP_ADDR=user:pass@host`).
 */
export class ConfigError extends GrpcLbError {
  readonly field: string;
  readonly problem: string;
  constructor(field: string, problem: string, context?: string) {
    const shown = redactSecrets(String(problem));
    super('BAD_CONFIG', `${context ? `${context}: ` : ''}invalid ${field}: ${shown}`);
    this.name = 'ConfigError';
    this.field = field;
    this.problem = shown;
  }
}

/** An endpoint pushed by a resolver that cannot be used (skipped with a warning by the adapter). */
export class EndpointError extends GrpcLbError {
  constructor(problem: string) {
    super('BAD_ENDPOINT', problem);
    this.name = 'EndpointError';
  }
}

/**
 * A grpc-js that core cannot work with: a version outside the supported
 * range, or a module object lacking what core uses (`missing`, as dotted
 * paths such as `experimental.statusOrFromValue`).
 */
export class UnsupportedGrpcJsError extends GrpcLbError {
  readonly version: string;
  readonly supportedRange: string;
  readonly missing: readonly string[];
  constructor(version: string, supportedRange: string, missing: readonly string[] = []) {
    super(
      'UNSUPPORTED_GRPC_JS',
      missing.length === 0
        ? `@grpc/grpc-js ${version} is not supported: @grpc-lb/core needs @grpc/grpc-js ${supportedRange}`
        : `the @grpc/grpc-js module given to register() lacks ${missing.join(', ')}: ` +
            `@grpc-lb/core needs @grpc/grpc-js ${supportedRange} (pass the module itself, not a copy of another version)`,
    );
    this.name = 'UnsupportedGrpcJsError';
    this.version = version;
    this.supportedRange = supportedRange;
    this.missing = missing;
  }
}

export class RegistrationError extends GrpcLbError {
  constructor(message: string) {
    super('REGISTRATION_FAILED', message);
    this.name = 'RegistrationError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A value's kind for error messages: `null`, `an array`, `the string "x"`, `number`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `the string ${JSON.stringify(value)}` : typeof value;
}
