import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseArgs } from './args';
import {
  DNS_INTERVAL_MS,
  builtinDnsTarget,
  consulInstanceId,
  consulTarget,
  convergenceSchedule,
  convergenceScenarioName,
  convergenceTiming,
  convergenceWanted,
  dnsAdd,
  dnsDelete,
  dnsLbTarget,
  etcdTarget,
  k8sNamespaceBody,
  k8sServiceBody,
  k8sSliceBody,
  k8sTarget,
  resourceVersionOf,
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
    assert.equal(convergenceWanted(['convergence'], 'k8s'), true);
    assert.equal(convergenceWanted(['convergence-k8s'], 'k8s'), true);
    assert.equal(convergenceWanted(['convergence-k8s'], 'etcd'), false);
    assert.equal(convergenceWanted(['convergence-etcd'], 'k8s'), false);
    assert.equal(convergenceScenarioName('etcd'), 'convergence-etcd');
    assert.equal(convergenceScenarioName('k8s'), 'convergence-k8s');
    assert.equal(convergenceWanted(['convergence'], 'consul'), true);
    assert.equal(convergenceWanted(['convergence-consul'], 'consul'), true);
    assert.equal(convergenceWanted(['convergence-consul'], 'etcd'), false);
    assert.equal(convergenceWanted(['convergence-etcd'], 'consul'), false);
    assert.equal(convergenceScenarioName('consul'), 'convergence-consul');
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
    assert.equal(consulTarget(), 'consul:///bench');
    assert.equal(consulInstanceId('127.0.0.4', 5000), 'bench-127.0.0.4-5000');
    assert.deepEqual(convergenceTiming('consul', true), convergenceTiming('etcd', true));
    assert.deepEqual(convergenceTiming('consul', false), convergenceTiming('etcd', false));
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
    // Both watch: the same phases.
    for (const quick of [true, false]) {
      assert.deepEqual(convergenceTiming('k8s', quick), convergenceTiming('etcd', quick));
    }
  });

  test('k8s: the named port of the Service in its namespace; Service and slice as the API wants', () => {
    assert.equal(k8sTarget(), 'k8s:///bench.grpc-lb-bench:grpc');
    assert.deepEqual(k8sNamespaceBody(), {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'grpc-lb-bench' },
    });
    const service = k8sServiceBody(5000) as { spec: { ports: Record<string, unknown>[] } };
    assert.deepEqual(service.spec.ports, [
      { name: 'grpc', port: 80, targetPort: 5000, protocol: 'TCP' },
    ]);
    const created = k8sSliceBody(['10.244.3.2', '10.244.3.3'], 5000) as {
      metadata: Record<string, unknown>;
      addressType: string;
      endpoints: { addresses: string[]; conditions: Record<string, boolean> }[];
      ports: Record<string, unknown>[];
    };
    assert.equal(created.addressType, 'IPv4');
    assert.deepEqual(created.metadata['labels'], { 'kubernetes.io/service-name': 'bench' });
    assert.equal('resourceVersion' in created.metadata, false, 'a POST carries none');
    assert.deepEqual(
      created.endpoints.map((e) => e.addresses),
      [['10.244.3.2'], ['10.244.3.3']],
    );
    for (const e of created.endpoints) {
      assert.deepEqual(e.conditions, { ready: true, serving: true, terminating: false });
    }
    assert.deepEqual(created.ports, [{ name: 'grpc', port: 5000, protocol: 'TCP' }]);
    const updated = k8sSliceBody([], 5000, '42') as {
      metadata: Record<string, unknown>;
      endpoints: unknown[];
    };
    assert.equal(updated.metadata['resourceVersion'], '42');
    assert.deepEqual(updated.endpoints, []);
  });

  test('k8s: resourceVersion of an answer, or an error naming what came back', () => {
    assert.equal(resourceVersionOf({ metadata: { resourceVersion: '1234' } }), '1234');
    assert.throws(
      () => resourceVersionOf({ kind: 'Status' }),
      /no metadata.resourceVersion.*Status/,
    );
    assert.throws(() => resourceVersionOf(undefined), /no metadata.resourceVersion/);
    assert.throws(
      () => resourceVersionOf({ metadata: { resourceVersion: '' } }),
      /resourceVersion/,
    );
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
