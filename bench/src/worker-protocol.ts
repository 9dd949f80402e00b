/**
 * Messages between the bench CLI and its worker processes (load generator, micro benchmarks).
 * Sent over the fork IPC channel with `serialization: 'advanced'`, so typed arrays pass as they are.
 */
import type { CallTrace, LoadMode } from './load-generator';
import type { FleetReport } from './fleet';
import type { MicroResults } from './micro';

/** One run of one scenario, as the worker needs it. */
export interface LoadSpec {
  scenario: string;
  target: string;
  channelOptions: Record<string, string | number>;
  /** Client channels (each its own connection); calls alternate between them. */
  channels: number;
  mode: LoadMode;
  concurrency: number;
  rate: number;
  count: number | null;
  durationMs: number | null;
  warmupMs: number;
  /** Per-call deadline. */
  deadlineMs: number;
  /** How long the channels may take to become READY. */
  readyTimeoutMs: number;
  /** Record every measured call's completion time, status and backend (`RunResult.trace`). */
  trace?: boolean;
  /**
   * Send at once on the new channels instead of waiting for them to be READY first: the calls
   * wait in the channel while it connects (what a client does right after it starts).
   */
  coldStart?: boolean;
  /**
   * Register grpc-lb with OpenTelemetry metrics on: a MeterProvider of the SDK whose periodic
   * reader collects every second into an in-memory exporter.
   */
  metrics?: boolean;
}

export interface RunResult {
  scenario: string;
  mode: LoadMode;
  latenciesMs: Float64Array;
  totalMs: number;
  statusCounts: Record<string, number>;
  perBackend: Record<string, number>;
  errorSamples: string[];
  maxSendLagMs: number;
  meanSendLagMs: number;
  /** CPU time (user + system) the load generator process used in the measured window, ms. */
  clientCpuMs: number;
  /** With `LoadSpec.trace`: per-call record, times relative to the measured window's start. */
  trace?: CallTrace;
  /**
   * With `LoadSpec.trace`: when the measured window started, as `performance.timeOrigin +
   * performance.now()` (ms since the epoch, sub-ms precision), comparable with the parent's clock.
   */
  windowStartEpochMs?: number;
}

export type ParentMessage =
  | { type: 'load'; spec: LoadSpec }
  | { type: 'micro'; quick: boolean }
  | { type: 'fleet'; quick: boolean };

export type WorkerMessage =
  | { type: 'window'; phase: 'start' | 'end'; atEpochMs?: number }
  | { type: 'log'; line: string }
  | { type: 'result'; result: RunResult }
  | { type: 'micro'; results: MicroResults }
  | { type: 'fleet'; report: FleetReport }
  | { type: 'error'; message: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isParentMessage(value: unknown): value is ParentMessage {
  if (!isRecord(value)) return false;
  if (value['type'] === 'micro' || value['type'] === 'fleet')
    return typeof value['quick'] === 'boolean';
  return value['type'] === 'load' && isRecord(value['spec']);
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  if (!isRecord(value)) return false;
  switch (value['type']) {
    case 'window':
      return (
        (value['phase'] === 'start' || value['phase'] === 'end') &&
        (value['atEpochMs'] === undefined || typeof value['atEpochMs'] === 'number')
      );
    case 'log':
      return typeof value['line'] === 'string';
    case 'result':
      return isRecord(value['result']);
    case 'micro':
      return isRecord(value['results']);
    case 'fleet':
      return isRecord(value['report']);
    case 'error':
      return typeof value['message'] === 'string';
    default:
      return false;
  }
}
