/**
 * Steady load for tests: `concurrency` callers issuing calls back to back until stopped, counting
 * successes per backend and failures by status.
 */
import type * as grpc from '@grpc/grpc-js';
import { type GreeterClient, isServiceError, sayHello, waitFor } from '../harness';

export interface LoadResult {
  ok: number;
  perBackend: Map<string, number>;
  errors: grpc.ServiceError[];
  /** When (performance.now()) each failed call was issued, in the order of `errors`. */
  errorStarts: number[];
  /** Set when a call threw instead of failing with a status (the client was closed). */
  thrown?: unknown;
}

export interface Load {
  /** Counts so far (live). */
  readonly result: LoadResult;
  /** Stops issuing calls and resolves when every caller has finished its last call. Idempotent. */
  stop(): Promise<LoadResult>;
}

export function startLoad(
  client: GreeterClient,
  options: { concurrency?: number; deadlineMs?: number; pauseMs?: number } = {},
): Load {
  const result: LoadResult = { ok: 0, perBackend: new Map(), errors: [], errorStarts: [] };
  let running = true;
  const caller = async (): Promise<void> => {
    while (running) {
      const startedAt = performance.now();
      try {
        const reply = await sayHello(client, 'load', { deadlineMs: options.deadlineMs ?? 5000 });
        result.ok++;
        result.perBackend.set(reply.address, (result.perBackend.get(reply.address) ?? 0) + 1);
      } catch (error) {
        // A call on a closed client throws at once: stop rather than spin.
        if (!isServiceError(error)) {
          running = false;
          result.thrown = error;
          return;
        }
        result.errors.push(error);
        result.errorStarts.push(startedAt);
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  };
  const callers = Array.from({ length: options.concurrency ?? 4 }, caller);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(callers);
      return result;
    },
  };
}

/** Share of successful calls that went to `address` since `since` (a copy of an earlier result). */
export function shareOf(result: LoadResult, address: string): number {
  return result.ok === 0 ? 0 : (result.perBackend.get(address) ?? 0) / result.ok;
}

/** `calls` sequential calls; how many each backend address answered. */
export async function spread(client: GreeterClient, calls: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < calls; i++) {
    const reply = await sayHello(client, 'spread');
    seen.set(reply.address, (seen.get(reply.address) ?? 0) + 1);
  }
  return seen;
}

/**
 * Waits until `address` has answered no call of `load` for `quietMs` (calls already picked before
 * a removal may still land there); resolves with when (performance.now()) it answered its last.
 */
export async function waitUntilQuiet(
  load: Load,
  address: string,
  options: { quietMs: number; timeoutMs: number; message: string },
): Promise<number> {
  let last = load.result.perBackend.get(address);
  let lastChange = performance.now();
  await waitFor(
    () => {
      const now = load.result.perBackend.get(address);
      if (now !== last) {
        last = now;
        lastChange = performance.now();
      }
      return performance.now() - lastChange > options.quietMs;
    },
    { timeoutMs: options.timeoutMs, message: options.message },
  );
  return lastChange;
}
