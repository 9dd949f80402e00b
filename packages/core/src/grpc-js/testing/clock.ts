import type { TestContext } from 'node:test';

/**
 * Replaces `performance.now()` (the clock of call tracking and of the pickers) with one the test
 * moves (`clock.now = …`), restored when the test ends. `mock.timers` does not mock it.
 */
export function stubClock(t: TestContext, start = 1_000_000): { now: number } {
  const clock = { now: start };
  const own = Object.getOwnPropertyDescriptor(performance, 'now');
  Object.defineProperty(performance, 'now', {
    value: () => clock.now,
    configurable: true,
    writable: true,
  });
  t.after(() => {
    if (own) Object.defineProperty(performance, 'now', own);
    else delete (performance as { now?: unknown }).now;
  });
  return clock;
}
