import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_HOLD_DOWN, holdDownOf, NegativeStreak } from './hold-down';

test('holdDownOf: defaults 2 answers and 5 s; a value missing, of the wrong type or out of range is defaulted', () => {
  assert.deepEqual(DEFAULT_HOLD_DOWN, { holdDownAnswers: 2, holdDownMs: 5_000 });
  assert.deepEqual(holdDownOf({}), DEFAULT_HOLD_DOWN);
  assert.deepEqual(holdDownOf({ holdDownAnswers: 4, holdDownMs: 0 }), {
    holdDownAnswers: 4,
    holdDownMs: 0,
  });
  for (const bad of [0, -1, 101, Number.NaN, Infinity, '3', null]) {
    assert.deepEqual(holdDownOf({ holdDownAnswers: bad, holdDownMs: bad }).holdDownAnswers, 2);
  }
  assert.equal(holdDownOf({ holdDownMs: -5 }).holdDownMs, 5_000);
});

test('NegativeStreak: gone only when both the answers and the duration are reached; reset starts over', () => {
  const streak = new NegativeStreak({ holdDownAnswers: 3, holdDownMs: 1_000 });
  assert.deepEqual(
    [0, 200, 400].map((t) => streak.negative(t).gone),
    [false, false, false],
  );
  const waiting = streak.negative(900);
  assert.equal(waiting.gone, false);
  assert.equal(!waiting.gone && waiting.remainingMs, 100);
  assert.equal(streak.negative(1_000).gone, true);
  streak.reset();
  assert.equal(streak.negative(5_000).gone, false, 'a new run');
  assert.equal(streak.negative(6_000).gone, false, '2 answers of 3');
  assert.equal(streak.negative(6_001).gone, true);
});
