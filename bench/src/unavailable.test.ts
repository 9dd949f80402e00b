import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Outcome, isCi, recordUnavailable, unavailableDecision } from './unavailable';

describe('a group whose server is missing', () => {
  test('is skipped with the reason when CI is not set (or not "true")', () => {
    for (const env of [{}, { CI: 'false' }, { CI: '1' }, { CI: '' }]) {
      assert.equal(isCi(env), false);
      assert.deepEqual(unavailableDecision('convergence-etcd', 'etcd: not found', env), {
        list: 'skipped',
        outcome: { name: 'convergence-etcd', reason: 'etcd: not found' },
        logLine: 'skipping convergence-etcd: etcd: not found',
      });
    }
  });

  test('fails under CI=true, saying why it is not a skip', () => {
    assert.equal(isCi({ CI: 'true' }), true);
    assert.deepEqual(unavailableDecision('convergence-dns', 'bind9: no named', { CI: 'true' }), {
      list: 'failed',
      outcome: {
        name: 'convergence-dns',
        reason: 'bind9: no named (CI=true: a failure, not a skip)',
      },
      logLine: 'FAILED convergence-dns: bind9: no named',
    });
  });

  test('recordUnavailable puts it on the right list and logs it', () => {
    for (const [env, list] of [
      [{ CI: 'true' }, 'failed'],
      [{}, 'skipped'],
    ] as const) {
      const skipped: Outcome[] = [];
      const failed: Outcome[] = [];
      const lines: string[] = [];
      for (const name of ['convergence-dns', 'convergence-etcd', 'convergence-consul']) {
        recordUnavailable((l) => lines.push(l), name, 'missing', skipped, failed, env);
      }
      const [hit, miss] = list === 'failed' ? [failed, skipped] : [skipped, failed];
      assert.deepEqual(
        hit.map((o) => o.name),
        ['convergence-dns', 'convergence-etcd', 'convergence-consul'],
      );
      assert.equal(miss.length, 0);
      assert.equal(lines.length, 3);
    }
  });
});
