/**
 * Parent side of the bench workers: forks worker-main.js for one request, waits for its answer
 * with a deadline, and makes sure the process is gone afterwards.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import type { FleetReport } from './fleet';
import type { MicroResults } from './micro';
import {
  type LoadSpec,
  type ParentMessage,
  type RunResult,
  type WorkerMessage,
  isWorkerMessage,
} from './worker-protocol';

const WORKER_MAIN = path.join(__dirname, 'worker-main.js');
const live = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface WorkerOptions {
  /** Node flags of the worker (e.g. --cpu-prof, --expose-gc). */
  execArgv: string[];
  /** The worker's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** The whole request must be answered within this. */
  timeoutMs: number;
  /** `atEpochMs`: the worker's clock (performance.timeOrigin + performance.now()) at that moment. */
  onWindow?: (phase: 'start' | 'end', atEpochMs: number | undefined) => void;
  onLog?: (line: string) => void;
}

export class WorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerError';
  }
}

function request<T>(
  message: ParentMessage,
  pickAnswer: (answer: WorkerMessage) => T | undefined,
  options: WorkerOptions,
): Promise<T> {
  const child = fork(WORKER_MAIN, [], {
    execArgv: options.execArgv,
    ...(options.env ? { env: options.env } : {}),
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));

  const answer = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new WorkerError(`worker (${message.type}) gave no answer within ${options.timeoutMs} ms`),
      );
    }, options.timeoutMs);
    const settle = (): void => clearTimeout(timer);
    child.on('message', (raw: unknown) => {
      if (!isWorkerMessage(raw)) return;
      if (raw.type === 'window') options.onWindow?.(raw.phase, raw.atEpochMs);
      else if (raw.type === 'log') options.onLog?.(raw.line);
      else if (raw.type === 'error') {
        settle();
        reject(new WorkerError(`worker (${message.type}) failed: ${raw.message}`));
      } else {
        const value = pickAnswer(raw);
        if (value !== undefined) {
          settle();
          resolve(value);
        }
      }
    });
    child.once('error', (error) => {
      settle();
      reject(new WorkerError(`worker (${message.type}) could not run: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      settle();
      reject(
        new WorkerError(`worker (${message.type}) exited (${signal ?? code}) without answering`),
      );
    });
  });
  child.send(message);
  return answer.finally(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // It exits by itself right after answering; a worker still alive a moment later is stuck.
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
  });
}

export function runLoadInWorker(spec: LoadSpec, options: WorkerOptions): Promise<RunResult> {
  return request<RunResult>(
    { type: 'load', spec },
    (answer) => (answer.type === 'result' ? answer.result : undefined),
    options,
  );
}

export function runMicroInWorker(quick: boolean, options: WorkerOptions): Promise<MicroResults> {
  return request<MicroResults>(
    { type: 'micro', quick },
    (answer) => (answer.type === 'micro' ? answer.results : undefined),
    options,
  );
}

export function runFleetInWorker(quick: boolean, options: WorkerOptions): Promise<FleetReport> {
  return request<FleetReport>(
    { type: 'fleet', quick },
    (answer) => (answer.type === 'fleet' ? answer.report : undefined),
    options,
  );
}
