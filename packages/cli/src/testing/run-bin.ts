import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The built command, run as an operator runs it. */
const BIN = join(__dirname, '..', 'bin.js');

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The launcher the package's `grpc-lb` bin points at (it runs dist/bin.js). */
export const LAUNCHER = join(__dirname, '..', '..', 'bin', 'grpc-lb.js');

/** Runs `node dist/bin.js …args` (or another script) with `stdin` as its input and waits for it to exit. */
export function grpcLb(args: readonly string[], stdin = '', script = BIN): Run {
  const result = spawnSync(process.execPath, [script, ...args], {
    input: stdin,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The run printed exactly one line on stderr, an `error:` without a stack trace, and nothing on stdout; returns it. */
export function assertOneErrorLine(run: Run): string {
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${run.stderr}`);
  assert.match(lines[0]!, /^error: /);
  assert.doesNotMatch(run.stderr, /\n\s+at /);
  assert.equal(run.stdout, '');
  return lines[0]!;
}

/** The `warning:` lines of stderr, without the prefix; fails on any other line. */
export function warningLines(run: Run): string[] {
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  for (const line of lines) assert.match(line, /^warning: /);
  return lines.map((l) => l.slice('warning: '.length));
}
