/**
 * Server binaries from Debian for tests: found on PATH (or /usr/sbin, /usr/bin), installed with
 * apt-get when missing, and — with CI=true — a failure rather than a skip when they cannot be had.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';

/** Where binaries are looked for: PATH, then the Debian server directories. */
export const TOOL_SEARCH_PATH: readonly string[] = [
  ...(process.env['PATH'] ?? '').split(delimiter),
  '/usr/sbin',
  '/usr/bin',
];

export interface ToolSpec<Name extends string> {
  /** Binary names, also the keys of the result. */
  readonly binaries: readonly Name[];
  /** Debian packages that provide them. */
  readonly packages: readonly string[];
  /** Makes the error thrown when they cannot be had. */
  readonly unavailable: (message: string) => Error;
}

export function findBinary(binary: string): string | undefined {
  for (const dir of TOOL_SEARCH_PATH) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary);
  }
  return undefined;
}

function findAll<Name extends string>(binaries: readonly Name[]): Record<Name, string> | undefined {
  const found = {} as Record<Name, string>;
  for (const binary of binaries) {
    const path = findBinary(binary);
    if (!path) return undefined;
    found[binary] = path;
  }
  return found;
}

/** apt-get install (after apt-get update when the first try fails); returns apt's last output. */
function aptInstall(packages: readonly string[], done: () => boolean): string {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const install = () =>
    spawnSync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...packages], {
      env,
      encoding: 'utf8',
      timeout: 600_000,
    });
  let result = install();
  if (result.status !== 0 && !done()) {
    spawnSync('apt-get', [...lock, 'update'], { env, encoding: 'utf8', timeout: 600_000 });
    result = install();
  }
  const output = `${String(result.stdout ?? '')}${String(result.stderr ?? '')}`;
  return result.error ? result.error.message : output.slice(-2000);
}

const cache = new Map<ToolSpec<string>, Record<string, string> | Error>();

/** The binaries' paths, installing their packages when missing; throws `spec.unavailable(…)`. */
export function ensureTools<Name extends string>(spec: ToolSpec<Name>): Record<Name, string> {
  let entry = cache.get(spec);
  if (entry === undefined) {
    let found = findAll(spec.binaries);
    let detail = '';
    if (!found && spec.packages.length > 0) {
      detail = aptInstall(spec.packages, () => findAll(spec.binaries) !== undefined);
      found = findAll(spec.binaries);
    }
    entry =
      found ??
      spec.unavailable(
        `${spec.binaries.join('/')} not found and apt-get install ${spec.packages.join(' ')} failed: ${detail}`,
      );
    cache.set(spec, entry);
  }
  if (entry instanceof Error) throw entry;
  return entry;
}

/** For a test that needs them: true when it can run; skips without them, except with CI=true (throws). */
export function requireTools(t: TestContext, spec: ToolSpec<string>): boolean {
  try {
    ensureTools(spec);
    return true;
  } catch (error) {
    if (process.env['CI'] === 'true') throw error;
    t.skip(error instanceof Error ? error.message : String(error));
    return false;
  }
}
