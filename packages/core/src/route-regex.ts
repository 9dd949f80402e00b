/**
 * Regular expressions of route matches (`routes[].match.regex`, header
 * `regex`), as a VirtualService's `uri.regex` / `headers.*.regex`: RE2
 * syntax, matched against the WHOLE value, evaluated by a linear-time engine
 * (re2js, a port of RE2). No backtracking: a pattern such as `(a+)+$` costs
 * time in proportion to the length of the value, whatever the value.
 *
 * A pattern is compiled once: parsing the same config again (every resolver
 * update parses the service config) reuses the compiled pattern.
 */
import { RE2JS, RE2JSException } from 're2js';
import { ConfigError } from './errors';

/**
 * RE2's measure of a compiled pattern's cost (instructions of its program):
 * matching may take up to this many steps per character. As Envoy's
 * `max_program_size`, a pattern above it is refused rather than made slow.
 */
export const MAX_PROGRAM_SIZE = 1000;

/** Compiled patterns by source, shared by every config that uses them. */
const compiled = new Map<string, RoutePattern>();
const MAX_COMPILED = 256;

export class RoutePattern {
  private constructor(
    /** The pattern as written. */
    readonly source: string,
    private readonly re: RE2JS,
  ) {}

  /**
   * Compiles `source`; throws `ConfigError` naming `field` when the pattern
   * is not valid RE2 (lookarounds and backreferences are not) or too large.
   */
  static compile(source: string, field: string): RoutePattern {
    const known = compiled.get(source);
    if (known) return known;
    let re: RE2JS;
    try {
      re = RE2JS.compile(source);
    } catch (err) {
      if (!(err instanceof RE2JSException)) throw err;
      const reason = err.message.replace(/^error parsing regexp: /, '');
      throw new ConfigError(field, `is not a valid RE2 pattern: ${reason}`);
    }
    const size = re.programSize();
    if (size > MAX_PROGRAM_SIZE) {
      throw new ConfigError(
        field,
        `pattern is too large (RE2 program size ${size}, at most ${MAX_PROGRAM_SIZE})`,
      );
    }
    const pattern = new RoutePattern(source, re);
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(source, pattern);
    return pattern;
  }

  /** Whether the pattern matches all of `value` (not just a part of it). */
  matches(value: string): boolean {
    return this.re.testExact(value);
  }

  /** A parsed config prints as the JSON it came from. */
  toJSON(): string {
    return this.source;
  }

  toString(): string {
    return this.source;
  }
}
