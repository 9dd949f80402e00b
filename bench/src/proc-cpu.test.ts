import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMachineBusyTicks, parseProcStat } from './proc-cpu';

describe('parseProcStat', () => {
  test('reads ppid, utime and stime even when the command name has spaces and parentheses', () => {
    const line =
      '1234 (nginx: worker (x)) S 1200 1234 1234 0 -1 4194560 500 0 0 0 77 33 0 0 20 0 1 0 100 0 0';
    assert.deepEqual(parseProcStat(line), { ppid: 1200, utime: 77, stime: 33 });
  });
});

describe('parseMachineBusyTicks', () => {
  test('adds everything but idle and iowait', () => {
    assert.equal(parseMachineBusyTicks('cpu  10 1 5 1000 7 2 3 4 0 0'), 10 + 1 + 5 + 2 + 3 + 4);
  });

  test('refuses a per-core or foreign line', () => {
    assert.throws(() => parseMachineBusyTicks('cpu0 1 2 3 4'), /aggregate/);
  });
});
