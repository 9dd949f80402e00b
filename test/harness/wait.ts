/**
 * Waiting on state with a deadline. Tests wait for the condition or the event they need, never for
 * a fixed time; every wait fails with a message saying what did not happen.
 *
 * The timers here are kept referenced on purpose: they exist only while someone awaits, are always
 * cleared when the wait settles, and keep the process alive for exactly as long as the wait lasts.
 */
import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';

export interface WaitForOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Time between polls; default 10 ms. */
  intervalMs?: number;
  /** What was awaited, used in the timeout error ("backend-1 to see 2 connections"). */
  message: string;
}

export class WaitTimeoutError extends Error {
  readonly code = 'WAIT_TIMEOUT';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WaitTimeoutError';
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : inspect(error);
}

/** The values of T that pass an `if`. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | '' | null | undefined>;

/**
 * Polls `predicate` until it returns a truthy value (which is returned) or the deadline passes.
 * A predicate that throws or rejects counts as "not yet"; its last error is attached as `cause`.
 */
export async function waitFor<T>(
  predicate: () => T | PromiseLike<T>,
  options: WaitForOptions,
): Promise<Truthy<T>> {
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  let polls = 0;
  for (;;) {
    polls += 1;
    try {
      const value = await predicate();
      if (value) return value as Truthy<T>;
    } catch (error) {
      lastError = error;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const detail = lastError === undefined ? '' : `; last error: ${describe(lastError)}`;
      throw new WaitTimeoutError(
        `timed out after ${options.timeoutMs} ms (${polls} polls) waiting for ${options.message}${detail}`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await sleep(Math.min(intervalMs, remaining));
  }
}

/**
 * Resolves with the arguments of the next `event` emitted by `emitter`. Rejects if `timeoutMs`
 * passes first, or if the emitter emits 'error' (unless 'error' is the awaited event).
 */
export function once<T extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string | symbol,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
      if (event !== 'error') emitter.removeListener('error', onError);
    };
    const onEvent = (...args: unknown[]): void => {
      cleanup();
      resolve(args as T);
    };
    const onError = (error: unknown): void => {
      cleanup();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new WaitTimeoutError(
          `timed out after ${timeoutMs} ms waiting for event '${String(event)}'`,
        ),
      );
    }, timeoutMs);
    emitter.on(event, onEvent);
    if (event !== 'error') emitter.on('error', onError);
  });
}

/** Settles like `promise`, or rejects with a {@link WaitTimeoutError} naming `what` after `timeoutMs`. */
export function withTimeout<T>(
  promise: PromiseLike<T>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
