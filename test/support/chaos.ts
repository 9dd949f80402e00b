/**
 * What every registry chaos test (test/chaos-*.test.ts) promises once its registry has hung and
 * crashed under load: no call failed, and the client followed an added and a removed backend
 * within FOLLOW_LIMIT_MS, without being restarted.
 */
import assert from 'node:assert/strict';

/** How soon after the registry is back a change must reach the calls. */
export const FOLLOW_LIMIT_MS = 5_000;

export function assertSurvived(
  errors: readonly { code: number; details: string }[],
  addedMs: number,
  removedMs: number,
  what = 'backend',
): void {
  assert.deepEqual(
    errors.map((e) => `${e.code}: ${e.details}`),
    [],
    'no call fails through the hang and the crash',
  );
  assert.ok(addedMs <= FOLLOW_LIMIT_MS, `added ${what} followed in ${Math.round(addedMs)} ms`);
  assert.ok(removedMs <= FOLLOW_LIMIT_MS, `removed ${what} dropped in ${Math.round(removedMs)} ms`);
}
