import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseArgs } from './args';
import {
  DNS_INTERVAL_MS,
  builtinDnsTarget,
  convergenceSchedule,
  convergenceScenarioName,
  convergenceTiming,
  convergenceWanted,
  dnsAdd,
  dnsDelete,
  dnsLbTarget,
  etcdTarget,
} from './convergence';

describe('convergence scenarios', () => {
  test('selected by convergence, convergence-<resolver>, or no --scenarios at all', () => {
    assert.equal(convergenceWanted(null, 'dns'), true);
    assert.equal(convergenceWanted(['convergence'], 'dns'), true);
    assert.equal(convergenceWanted(['convergence'], 'etcd'), true);
    assert.equal(convergenceWanted(['convergence-dns'], 'dns'), true);
    assert.equal(convergenceWanted(['convergence-dns'], 'etcd'), false);
    assert.equal(convergenceWanted(['convergence-etcd'], 'etcd'), true);
    assert.equal(convergenceWanted(['direct', 'failover'], 'dns'), false);
    assert.equal(convergenceScenarioName('etcd'), 'convergence-etcd');
  });

  test('--convergence-rounds: 10 by default, 2 in --quick, 0 turns the group off', () => {
    assert.equal(parseArgs([]).convergenceRounds, 10);
    assert.equal(parseArgs(['--quick']).convergenceRounds, 2);
    assert.equal(parseArgs(['--convergence-rounds', '0']).convergenceRounds, 0);
    assert.throws(() => parseArgs(['--convergence-rounds', 'x']), /--convergence-rounds/);
  });

  test('targets: dns+lb: with its interval, the built-in dns: on the same server, etcd', () => {
    assert.equal(
      dnsLbTarget('127.0.0.1:5353', 5000, 1000),
      'dns+lb://127.0.0.1:5353/api.svc.test:5000?interval=1000ms',
    );
    assert.equal(
      builtinDnsTarget('127.0.0.1:5353', 5000),
      'dns://127.0.0.1:5353/api.svc.test:5000',
    );
    assert.equal(etcdTarget('127.0.0.1:2379'), 'etcd://127.0.0.1:2379/services/bench');
    assert.equal(dnsAdd('127.0.0.4'), 'add api.svc.test. 1 A 127.0.0.4');
    assert.equal(dnsDelete('127.0.0.4'), 'delete api.svc.test. A 127.0.0.4');
  });

  test('DNS phases outlast the interval with room for a lookup; jitter covers one interval', () => {
    for (const quick of [true, false]) {
      const t = convergenceTiming('dns', quick);
      assert.ok(t.addPhaseMs >= DNS_INTERVAL_MS + 500, `quick=${quick}`);
      assert.ok(t.removePhaseMs - t.quietMs > DNS_INTERVAL_MS, `quick=${quick}`);
      assert.equal(t.jitterMs, DNS_INTERVAL_MS);
    }
    const etcd = convergenceTiming('etcd', false);
    assert.ok(etcd.addPhaseMs > 250 && etcd.removePhaseMs - etcd.quietMs >= 250);
  });

  test('schedule: rounds back to back, each add jittered, removal one add phase later', () => {
    const timing = convergenceTiming('dns', false);
    const randoms = [0, 0.5, 0.999];
    let i = 0;
    const s = convergenceSchedule(timing, 3, () => randoms[i++]!);
    const round = timing.addPhaseMs + timing.removePhaseMs;
    assert.deepEqual(
      s.steps.map((x) => x.addAtMs),
      [timing.leadMs, timing.leadMs + round + 500, timing.leadMs + 2 * round + 500 + 999],
    );
    for (const step of s.steps) assert.equal(step.removeAtMs - step.addAtMs, timing.addPhaseMs);
    assert.equal(s.durationMs, s.steps[2]!.removeAtMs + timing.removePhaseMs);
    assert.deepEqual(convergenceSchedule(timing, 0).steps, []);
  });
});
