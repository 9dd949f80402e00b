import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { durationNanos, grpcDuration } from './duration';

describe('durations', () => {
  const cases: [string, string | undefined][] = [
    ['10s', '10s'],
    ['1.5s', '1.5s'],
    ['500ms', '0.5s'],
    ['1m30s', '90s'],
    ['2h', '7200s'],
    ['250us', '0.00025s'],
    ['1ms', '0.001s'],
    ['0s', '0s'],
    ['0', '0s'],
    ['', undefined],
    ['10', undefined],
    ['1x', undefined],
    ['-1s', undefined],
    ['s', undefined],
    ['1s ', undefined],
  ];
  for (const [text, grpc] of cases) {
    test(`"${text}" → ${grpc ?? 'not a duration'}`, () => {
      const nanos = durationNanos(text);
      assert.equal(nanos === undefined ? undefined : grpcDuration(nanos), grpc);
    });
  }
});
