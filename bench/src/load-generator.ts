/**
 * The load loop, independent of gRPC: it drives `UnaryCall`s (one per client channel) closed-loop
 * (a fixed number of calls in flight) or open-loop (a fixed rate), after a warm-up whose calls are
 * not recorded, until a call count and/or a duration is reached.
 *
 * Open loop measures each call from its INTENDED send time (start + i / rate), not from when it
 * was actually sent, so a stall in the client or the server shows up in the latencies instead of
 * silently lowering the offered load (coordinated omission).
 */

export interface CallError {
  code: number;
  details: string;
}

/** Starts one call; `done` is called once, with the replying backend's address on success. */
export type UnaryCall = (done: (error: CallError | null, address?: string) => void) => void;

export type LoadMode = 'closed' | 'open';

export interface GeneratorOptions {
  mode: LoadMode;
  /** Closed loop: calls in flight. Open loop: the most calls in flight before sends wait. */
  concurrency: number;
  /** Open loop: calls per second. */
  rate: number;
  /** Stop after this many measured calls (null: no count bound). */
  count: number | null;
  /** Stop issuing this long after the measured window starts (null: no time bound). */
  durationMs: number | null;
  warmupMs: number;
  /** One per client channel; call i of a worker goes to channel i mod channels. */
  calls: readonly UnaryCall[];
  /** Clock in ms; performance.now by default. */
  now?: () => number;
  /** Told when the measured window starts and when the last measured call has been issued. */
  onWindow?: (phase: 'start' | 'end') => void;
  /** Also record when each measured call completed, its status and backend (`LoadOutcome.trace`). */
  trace?: boolean;
}

/**
 * Per-call record of the measured calls, in completion order (index i is `latenciesMs[i]`), for
 * time-resolved analysis such as failover (what failed when, who answered).
 */
export interface CallTrace {
  /** `now()` when the measured window started; the times below are relative to it. */
  windowStartedAt: number;
  /** Completion time of each call, ms since the window started. */
  completedMs: Float64Array;
  /** gRPC status code of each call (0 = OK). */
  codes: Uint8Array;
  /** Index into `backends` of the backend that answered; -1 for a failed call. */
  backendIndex: Int16Array;
  /** Addresses of the backends that answered, in order of their first reply. */
  backends: string[];
}

export interface LoadOutcome {
  /** Latency of every measured call (successful or not), ms, in completion order. */
  latenciesMs: Float64Array;
  /** From the start of the measured window to the completion of its last call. */
  totalMs: number;
  /** Calls per grpc status code (numeric, as a string key). */
  statusCounts: Record<string, number>;
  /** Successful calls per replying backend address. */
  perBackend: Record<string, number>;
  /** The first few error details, for the report. */
  errorSamples: string[];
  /** Open loop: the latest any measured call was sent after its intended time, ms. */
  maxSendLagMs: number;
  /** Open loop: how late measured calls were sent on average, ms (timer granularity, stalls). */
  meanSendLagMs: number;
  /** With `trace: true` (and a measured window). */
  trace?: CallTrace;
}

const MAX_ERROR_SAMPLES = 5;

class Samples {
  private data = new Float64Array(1 << 14);
  length = 0;
  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }
  toArray(): Float64Array {
    return this.data.slice(0, this.length);
  }
}

/** Builds a CallTrace call by call. */
class TraceRecorder {
  private readonly completed = new Samples();
  private codes = new Uint8Array(1 << 14);
  private backendIndex = new Int16Array(1 << 14);
  private readonly indexOf = new Map<string, number>();
  private readonly backends: string[] = [];

  push(completedMs: number, code: number, address: string | undefined): void {
    const i = this.completed.length;
    this.completed.push(completedMs);
    if (i === this.codes.length) {
      const codes = new Uint8Array(this.codes.length * 2);
      codes.set(this.codes);
      this.codes = codes;
      const backendIndex = new Int16Array(this.backendIndex.length * 2);
      backendIndex.set(this.backendIndex);
      this.backendIndex = backendIndex;
    }
    this.codes[i] = code;
    let index = -1;
    if (code === 0 && address !== undefined) {
      index = this.indexOf.get(address) ?? -1;
      if (index < 0) {
        index = this.backends.length;
        this.backends.push(address);
        this.indexOf.set(address, index);
      }
    }
    this.backendIndex[i] = index;
  }

  result(windowStartedAt: number): CallTrace {
    const length = this.completed.length;
    return {
      windowStartedAt,
      completedMs: this.completed.toArray(),
      codes: this.codes.slice(0, length),
      backendIndex: this.backendIndex.slice(0, length),
      backends: [...this.backends],
    };
  }
}

export function validateGeneratorOptions(options: GeneratorOptions): void {
  if (options.calls.length === 0) throw new RangeError('calls: at least one channel is needed');
  if (!(Number.isInteger(options.concurrency) && options.concurrency >= 1)) {
    throw new RangeError(`concurrency: ${options.concurrency} is not an integer ≥ 1`);
  }
  if (options.mode === 'open' && !(options.rate > 0 && Number.isFinite(options.rate))) {
    throw new RangeError(`rate: ${options.rate} is not a positive number (open loop)`);
  }
  if (options.count === null && options.durationMs === null) {
    throw new RangeError('count and duration: at least one bound is needed');
  }
  if (options.count !== null && !(Number.isInteger(options.count) && options.count >= 1)) {
    throw new RangeError(`count: ${options.count} is not an integer ≥ 1`);
  }
  if (options.durationMs !== null && !(options.durationMs > 0)) {
    throw new RangeError(`duration: ${options.durationMs} ms is not positive`);
  }
  if (!(options.warmupMs >= 0)) throw new RangeError(`warmup: ${options.warmupMs} ms is negative`);
}

export function generateLoad(options: GeneratorOptions): Promise<LoadOutcome> {
  validateGeneratorOptions(options);
  const now = options.now ?? (() => performance.now());
  const latencies = new Samples();
  const statusCounts: Record<string, number> = {};
  const perBackend: Record<string, number> = {};
  const errorSamples: string[] = [];
  const trace = options.trace ? new TraceRecorder() : null;
  const startedAt = now();
  const warmupEnd = startedAt + options.warmupMs;
  let windowStart: number | null = null;
  let windowEnd = Infinity;
  let lastMeasuredCompletion = NaN;
  let measuredIssued = 0;
  let inFlight = 0;
  let issuing = true;
  let nextChannel = 0;
  let maxSendLagMs = 0;
  let sendLagSumMs = 0;

  return new Promise<LoadOutcome>((resolve) => {
    const finishIfDrained = (): void => {
      if (issuing || inFlight > 0) return;
      resolve({
        latenciesMs: latencies.toArray(),
        totalMs: windowStart === null ? 0 : Math.max(0, lastMeasuredCompletion - windowStart),
        statusCounts,
        perBackend,
        errorSamples,
        maxSendLagMs,
        meanSendLagMs: measuredIssued > 0 ? sendLagSumMs / measuredIssued : 0,
        ...(trace && windowStart !== null ? { trace: trace.result(windowStart) } : {}),
      });
    };

    const openWindow = (at: number): void => {
      windowStart = at;
      if (options.durationMs !== null) windowEnd = at + options.durationMs;
      options.onWindow?.('start');
    };

    const stopIssuing = (): void => {
      if (!issuing) return;
      issuing = false;
      options.onWindow?.('end');
    };

    /** Whether the measured window is over (for a call that would be sent at `at`). */
    const windowOver = (at: number): boolean =>
      windowStart !== null &&
      ((options.count !== null && measuredIssued >= options.count) || at >= windowEnd);

    const issue = (measuredFrom: number | null): void => {
      const call = options.calls[nextChannel]!;
      nextChannel = (nextChannel + 1) % options.calls.length;
      if (measuredFrom !== null) measuredIssued++;
      inFlight++;
      const sentAt = now();
      if (measuredFrom !== null) {
        maxSendLagMs = Math.max(maxSendLagMs, sentAt - measuredFrom);
        sendLagSumMs += sentAt - measuredFrom;
      }
      const from = measuredFrom ?? sentAt;
      let settled = false;
      call((error, address) => {
        if (settled) return;
        settled = true;
        inFlight--;
        if (measuredFrom !== null) {
          const completedAt = now();
          latencies.push(completedAt - from);
          lastMeasuredCompletion = completedAt;
          const code = String(error ? error.code : 0);
          statusCounts[code] = (statusCounts[code] ?? 0) + 1;
          if (trace && windowStart !== null) {
            trace.push(completedAt - windowStart, error ? error.code : 0, address);
          }
          if (error) {
            if (errorSamples.length < MAX_ERROR_SAMPLES) {
              errorSamples.push(`${error.code} ${error.details}`);
            }
          } else if (address !== undefined) {
            perBackend[address] = (perBackend[address] ?? 0) + 1;
          }
        }
        onCompletion();
      });
    };

    let onCompletion: () => void;

    if (options.mode === 'closed') {
      const next = (): void => {
        if (!issuing) return;
        const at = now();
        if (windowStart === null && at >= warmupEnd) openWindow(at);
        if (windowOver(at)) {
          stopIssuing();
          return;
        }
        issue(windowStart === null ? null : at);
      };
      onCompletion = () => {
        next();
        finishIfDrained();
      };
      for (let i = 0; i < options.concurrency && issuing; i++) next();
      finishIfDrained();
      return;
    }

    // Open loop: call i is due at startedAt + i * interval.
    const interval = 1000 / options.rate;
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      timer = undefined;
      if (!issuing) return;
      const at = now();
      for (;;) {
        const due = startedAt + sent * interval;
        if (due > at) break;
        if (windowStart === null && due >= warmupEnd) openWindow(due);
        if (windowOver(due)) {
          stopIssuing();
          finishIfDrained();
          return;
        }
        if (inFlight >= options.concurrency) return; // resumed by the next completion
        sent++;
        issue(windowStart === null ? null : due);
      }
      const wait = startedAt + sent * interval - now();
      timer = setTimeout(tick, Math.max(0, wait));
    };
    onCompletion = () => {
      if (issuing && timer === undefined) tick();
      finishIfDrained();
    };
    tick();
  });
}
