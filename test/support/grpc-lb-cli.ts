/**
 * Runs the built `grpc-lb` command (packages/cli/dist/bin.js) as a user's shell would, for the CLI
 * integration tests: its output so far, a way to signal it, and its end.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const GRPC_LB_BIN = join(__dirname, '..', '..', '..', 'packages', 'cli', 'dist', 'bin.js');

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running `grpc-lb …`. */
export interface CliChild {
  stdout(): string;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
  readonly done: Promise<CliRun>;
}

export interface CliOptions {
  /** Added to the environment. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Start from PATH alone instead of this process's environment, so that a developer's
   * CONSUL_* or ETCDCTL_* cannot leak into a test.
   */
  readonly isolated?: boolean;
  /** Killed (SIGKILL) after this long; default 60 s. */
  readonly timeoutMs?: number;
}

export function startGrpcLb(args: readonly string[], options: CliOptions = {}): CliChild {
  const base = options.isolated ? { PATH: process.env['PATH'] } : process.env;
  const child = spawn(process.execPath, [GRPC_LB_BIN, ...args], {
    env: { ...base, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  return { stdout: () => out, stderr: () => err, kill: (s) => child.kill(s), done };
}

/** Runs `grpc-lb …` to its end. */
export function runGrpcLb(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return startGrpcLb(args, options).done;
}
