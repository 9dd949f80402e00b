/**
 * OpenTelemetry metrics, recorded through the SDK's MeterProvider and read
 * back with a MetricReader: the real balancer over fake subchannels for the
 * call, connection and ejection metrics, and a real grpc-js channel for the
 * resolver's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, mock, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
} from '@opentelemetry/sdk-metrics';
import { ManualEndpoints } from '../manual-target';
import { createMetrics, METRICS_OPTION, type MeterProviderLike } from '../metrics';
import { register } from '../register';
import { LEAST_REQUEST_POLICY } from '../least-request-config';
import { ROUND_ROBIN_POLICY } from '../service-config';
import { TRAFFIC_SPLIT_POLICY } from '../traffic-split-config';
import { statusNames } from './runtime';
import { PolicyHarness, Status } from './testing/fake-channel';

const A = '10.0.0.1:80';
const B = '10.0.0.2:80';
const TARGET = 'test:///svc';
const METHOD = '/pkg.Greeter/SayHello';

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Point {
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly value: number | Histogram;
}

/** A provider and a function reading every metric it holds, by name. */
function sdk(): { provider: MeterProvider; read: () => Promise<Map<string, Point[]>> } {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    read: async () => {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const byName = new Map<string, Point[]>();
      for (const scope of resourceMetrics.scopeMetrics) {
        assert.equal(scope.scope.name, '@grpc-lb/core');
        for (const metric of scope.metrics) {
          const points = (metric.dataPoints as DataPoint<number | Histogram>[]).map((p) => ({
            attributes: p.attributes,
            value: p.value,
          }));
          if (metric.dataPointType === DataPointType.HISTOGRAM) {
            assert.equal(metric.descriptor.unit, 's', metric.descriptor.name);
          }
          byName.set(metric.descriptor.name, points);
        }
      }
      return byName;
    },
  };
}

/** The value of the point of `name` with exactly `attributes` (0 when there is none). */
function valueOf(
  metrics: Map<string, Point[]>,
  name: string,
  attributes: Record<string, string>,
): number | Histogram {
  const point = (metrics.get(name) ?? []).find((p) => {
    const keys = Object.keys(p.attributes);
    return (
      keys.length === Object.keys(attributes).length &&
      keys.every((k) => p.attributes[k] === attributes[k])
    );
  });
  return point?.value ?? 0;
}

function histogram(value: number | Histogram): { count: number; sum: number } {
  if (typeof value === 'number') return { count: 0, sum: 0 };
  return { count: value.count, sum: value.sum ?? NaN };
}

describe('metrics of calls', () => {
  test('grpc.client.attempt.started sums the channels of one target and keeps counting after one closes', async () => {
    const { provider, read } = sdk();
    const metrics = createMetrics({ meterProvider: provider }, statusNames(grpc), {
      warn: () => {},
    });
    const first = metrics.forTarget(TARGET);
    const second = metrics.forTarget(TARGET);
    for (let i = 0; i < 3; i++) first.attemptStarted(first.method(METHOD));
    for (let i = 0; i < 4; i++) second.attemptStarted(second.method(METHOD));
    second.attemptStarted(second.method(undefined));
    const call = { 'grpc.method': METHOD, 'grpc.target': TARGET };
    let read1 = await read();
    assert.equal(valueOf(read1, 'grpc.client.attempt.started', call), 7);
    assert.equal(
      valueOf(read1, 'grpc.client.attempt.started', { ...call, 'grpc.method': 'other' }),
      1,
    );
    // A channel of the same target made later (the first ones closed) adds to the same count.
    const third = metrics.forTarget(TARGET);
    third.attemptStarted(third.method(METHOD));
    read1 = await read();
    assert.equal(valueOf(read1, 'grpc.client.attempt.started', call), 8);
    assert.equal((read1.get('grpc.client.attempt.started') ?? []).length, 2);
  });

  test('grpc.client.attempt.started and .duration by method, target and status; no addresses', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    try {
      await h.ready();
      h.pickMany(6, { method: METHOD, code: Status.OK, latencyMs: 20 });
      h.pickMany(2, { method: METHOD, code: Status.UNAVAILABLE, latencyMs: 5 });
      h.pickMany(1, { code: Status.OK, latencyMs: 1 });
      const metrics = await read();
      const call = { 'grpc.method': METHOD, 'grpc.target': TARGET };
      assert.equal(valueOf(metrics, 'grpc.client.attempt.started', call), 8);
      assert.equal(
        valueOf(metrics, 'grpc.client.attempt.started', { ...call, 'grpc.method': 'other' }),
        1,
      );
      const ok = histogram(
        valueOf(metrics, 'grpc.client.attempt.duration', { ...call, 'grpc.status': 'OK' }),
      );
      assert.equal(ok.count, 6);
      assert.ok(Math.abs(ok.sum - 0.12) < 1e-6, `sum ${ok.sum}`);
      const failed = histogram(
        valueOf(metrics, 'grpc.client.attempt.duration', {
          ...call,
          'grpc.status': 'UNAVAILABLE',
        }),
      );
      assert.equal(failed.count, 2);
      assert.ok(Math.abs(failed.sum - 0.01) < 1e-6, `sum ${failed.sum}`);
      const text = JSON.stringify([...metrics.values()].flat().map((p) => p.attributes));
      assert.ok(!text.includes('10.0.0.'), `an address in ${text}`);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('off (no meter provider): picks are not wrapped, nothing is measured', async () => {
    const h = PolicyHarness.create({ policy: ROUND_ROBIN_POLICY, endpoints: [A] });
    try {
      await h.ready();
      assert.equal(h.rt.metrics, undefined);
      const result = h.picker.pick(h.pickArgs({ method: METHOD }));
      assert.equal(result.onCallStarted, null, 'no per-call callback without metrics');
      assert.equal(result.onCallEnded, null);
    } finally {
      h.destroy();
    }
  });

  test('a channel with grpc-lb.metrics: false is not measured, and its leaves never see the option', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A],
      target: TARGET,
      meterProvider: provider,
      options: { [METRICS_OPTION]: false },
    });
    try {
      await h.ready();
      const result = h.picker.pick(h.pickArgs({ method: METHOD }));
      assert.equal(result.onCallStarted, null, 'no per-call callback');
      h.pickMany(3, { method: METHOD });
      const metrics = await read();
      const measured = [...metrics.values()].flat().filter((p) => p.attributes['grpc.target']);
      assert.deepEqual(measured, []);
      assert.ok(!(METRICS_OPTION in h.subchannel(A).args), 'kept out of subchannel args');
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('an SDK that throws never reaches the call: calls go on, one warning', async () => {
    const throwing = () => {
      throw new Error('exporter exploded');
    };
    let gauge: ((result: { observe: () => never }) => void) | undefined;
    const provider: MeterProviderLike = {
      getMeter: () => ({
        createCounter: () => ({ add: throwing }),
        createUpDownCounter: () => ({ add: throwing }),
        createHistogram: () => ({ record: throwing }),
        createObservableGauge: () => ({
          addCallback: (callback) => {
            gauge ??= callback; // grpc_lb.endpoints, which observes this balancer's endpoints
          },
        }),
        createObservableCounter: () => ({ addCallback: () => {} }),
      }),
    };
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      meterProvider: provider,
    });
    try {
      await h.ready();
      const tally = h.pickMany(10, { method: METHOD, code: Status.OK, latencyMs: 3 });
      assert.deepEqual(tally.counts, { [A]: 5, [B]: 5 });
      assert.equal(h.stateName, 'READY');
      assert.ok(gauge, 'the endpoints gauge has a callback');
      gauge({ observe: throwing }); // as the SDK would, on a collection
      const warnings = h.warnings.filter((w) => w.startsWith('metrics:'));
      assert.equal(warnings.length, 1, h.warnings.join('\n'));
      assert.match(warnings[0]!, /exporter exploded/);
    } finally {
      h.destroy();
    }
  });
});

describe('metrics of connections (A94)', () => {
  test('connection attempts succeeded and failed, disconnections, open connections', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    const target = { 'grpc.target': TARGET };
    try {
      await h.ready();
      let metrics = await read();
      assert.equal(valueOf(metrics, 'grpc.subchannel.connection_attempts_succeeded', target), 2);
      assert.equal(valueOf(metrics, 'grpc.subchannel.open_connections', target), 2);

      await h.setState('TRANSIENT_FAILURE', [A], 'connection reset');
      await h.setState('CONNECTING', [A]);
      await h.setState('TRANSIENT_FAILURE', [A], 'connection refused');
      metrics = await read();
      assert.equal(
        valueOf(metrics, 'grpc.subchannel.disconnections', {
          ...target,
          'grpc.disconnect_error': 'unknown',
        }),
        1,
      );
      assert.equal(valueOf(metrics, 'grpc.subchannel.connection_attempts_failed', target), 1);
      assert.equal(valueOf(metrics, 'grpc.subchannel.open_connections', target), 1);
      const endpoints = (state: string) =>
        valueOf(metrics, 'grpc_lb.endpoints', { ...target, 'grpc_lb.endpoint.state': state });
      assert.deepEqual(
        ['ready', 'transient_failure', 'connecting', 'idle', 'ejected'].map(endpoints),
        [1, 1, 0, 0, 0],
      );

      h.destroy();
      metrics = await read();
      assert.equal(valueOf(metrics, 'grpc.subchannel.open_connections', target), 0);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });
});

describe('metrics of outlier detection (A91)', () => {
  test('ejections enforced, and unenforced at max_ejection_percent', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: {
        outlierDetection: {
          interval: '10s',
          baseEjectionTime: '30s',
          consecutiveFailures: 1,
          maxEjectionPercent: 50,
        },
      },
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    const consecutive = {
      'grpc.target': TARGET,
      'grpc.lb.outlier_detection.detection_method': 'consecutive_failures',
    };
    try {
      await h.ready();
      const first = h.call();
      if (first.kind !== 'complete') return assert.fail(first.kind);
      first.end({ code: Status.UNAVAILABLE });
      // The other endpoint fails too, but half of the endpoints are out already.
      const second = h.call();
      if (second.kind !== 'complete') return assert.fail(second.kind);
      assert.notEqual(second.address, first.address);
      second.end({ code: Status.UNAVAILABLE });
      const metrics = await read();
      assert.equal(
        valueOf(metrics, 'grpc.lb.outlier_detection.ejections_enforced', consecutive),
        1,
      );
      assert.equal(
        valueOf(metrics, 'grpc.lb.outlier_detection.ejections_unenforced', consecutive),
        1,
      );
      const endpoints = (state: string) =>
        valueOf(metrics, 'grpc_lb.endpoints', {
          'grpc.target': TARGET,
          'grpc_lb.endpoint.state': state,
        });
      assert.deepEqual([endpoints('ready'), endpoints('ejected')], [1, 1]);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });
});

describe('metrics of health checks and panic mode', () => {
  test('grpc_lb.endpoints.health by status and grpc_lb.panic while in panic mode', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { healthCheck: {}, panicThreshold: 50 },
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    const target = { 'grpc.target': TARGET };
    const health = (metrics: Map<string, Point[]>, status: string) =>
      valueOf(metrics, 'grpc_lb.endpoints.health', {
        ...target,
        'grpc_lb.endpoint.health': status,
      });
    try {
      await h.ready();
      await h.setHealth(A, 'NOT_SERVING');
      await h.setHealth(B, 'NOT_SERVING');
      let metrics = await read();
      assert.equal(health(metrics, 'not_serving'), 2);
      assert.equal(valueOf(metrics, 'grpc_lb.panic', target), 1);
      await h.setHealth(A, 'SERVING');
      metrics = await read();
      assert.deepEqual([health(metrics, 'serving'), health(metrics, 'not_serving')], [1, 1]);
      assert.equal(valueOf(metrics, 'grpc_lb.panic', target), 0);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });
});

const STATES = ['ready', 'connecting', 'idle', 'transient_failure', 'ejected'] as const;

/** `name`'s points of `target` as `key value state` → count, the zero ones too. */
function byKeyAndState(
  metrics: Map<string, Point[]>,
  name: string,
  key: string,
  target: string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of metrics.get(name) ?? []) {
    if (p.attributes['grpc.target'] !== target) continue;
    assert.deepEqual(
      Object.keys(p.attributes).sort(),
      ['grpc.target', key, 'grpc_lb.endpoint.state'].sort(),
    );
    out[`${String(p.attributes[key])} ${String(p.attributes['grpc_lb.endpoint.state'])}`] =
      p.value as number;
  }
  return out;
}

/** Every state of `name` at 0 but those given. */
function states(name: string, counts: Partial<Record<(typeof STATES)[number], number>>) {
  return Object.fromEntries(STATES.map((state) => [`${name} ${state}`, counts[state] ?? 0]));
}

describe('grpc_lb metrics of sources, subsets, slow start and least request', () => {
  test('grpc_lb.source.endpoints: per source of a composite target, by state; a source gone empty stays at 0', async () => {
    const { provider, read } = sdk();
    const target = 'composite:///svc?vms=dns:///vms.internal&pods=k8s:///svc.prod:grpc';
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [
        { address: A, labels: { source: 'vms' } },
        { address: B, labels: { source: 'pods' } },
        { address: '10.0.0.3:80', labels: { source: 'pods' } },
      ],
      target,
      meterProvider: provider,
    });
    try {
      await h.ready(A, B);
      await h.fail('connection refused', '10.0.0.3:80');
      let metrics = await read();
      assert.deepEqual(
        byKeyAndState(metrics, 'grpc_lb.source.endpoints', 'grpc_lb.source', target),
        {
          ...states('vms', { ready: 1 }),
          ...states('pods', { ready: 1, transient_failure: 1 }),
        },
      );
      h.update({ endpoints: [{ address: A, labels: { source: 'vms' } }] });
      await h.settle();
      metrics = await read();
      assert.deepEqual(
        byKeyAndState(metrics, 'grpc_lb.source.endpoints', 'grpc_lb.source', target),
        {
          ...states('vms', { ready: 1 }),
          ...states('pods', {}),
        },
      );
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('grpc_lb.source.endpoints: nothing for a target that is not composite, whatever its labels', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [{ address: A, labels: { source: 'pod-7f9c-abcde' } }],
      target: TARGET,
      meterProvider: provider,
    });
    try {
      await h.ready();
      const metrics = await read();
      assert.equal(
        valueOf(metrics, 'grpc_lb.endpoints', {
          'grpc.target': TARGET,
          'grpc_lb.endpoint.state': 'ready',
        }),
        1,
      );
      assert.deepEqual(metrics.get('grpc_lb.source.endpoints') ?? [], []);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('grpc_lb.subset.endpoints: every subset of a traffic split by state, an endpoint in each subset it belongs to', async () => {
    const { provider, read } = sdk();
    const V1 = '10.0.1.1:80';
    const V2 = '10.0.2.1:80';
    const h = PolicyHarness.create({
      policy: TRAFFIC_SPLIT_POLICY,
      config: {
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
          { name: 'v3', labels: { version: 'v3' } },
          { name: 'all', labels: {} },
        ],
        routes: [{ name: 'default', split: [{ subset: 'v1', weight: 1 }] }],
      },
      endpoints: [
        { address: V1, labels: { version: 'v1' } },
        { address: V2, labels: { version: 'v2' } },
      ],
      target: TARGET,
      meterProvider: provider,
    });
    try {
      await h.ready(V1);
      await h.fail('connection refused', V2);
      const metrics = await read();
      assert.deepEqual(
        byKeyAndState(metrics, 'grpc_lb.subset.endpoints', 'grpc_lb.subset', TARGET),
        {
          ...states('v1', { ready: 1 }),
          ...states('v2', { transient_failure: 1 }),
          ...states('v3', {}),
          ...states('all', { ready: 1, transient_failure: 1 }),
        },
      );
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('grpc_lb.subset.endpoints: nothing for a policy without subsets', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [{ address: A, labels: { version: 'v1' } }],
      target: TARGET,
      meterProvider: provider,
    });
    try {
      await h.ready();
      assert.deepEqual((await read()).get('grpc_lb.subset.endpoints') ?? [], []);
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });

  test('grpc_lb.slow_start.endpoints: endpoints in rotation inside their window, 0 after it and without slowStart', async () => {
    const { provider, read } = sdk();
    const slow = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      config: { slowStart: { window: '30s' } },
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    const plain = PolicyHarness.create({
      policy: ROUND_ROBIN_POLICY,
      endpoints: [A, B],
      target: 'test:///plain',
      meterProvider: provider,
    });
    const ramping = (metrics: Map<string, Point[]>, target: string) =>
      valueOf(metrics, 'grpc_lb.slow_start.endpoints', { 'grpc.target': target });
    try {
      await plain.ready();
      await slow.ready(A);
      let metrics = await read();
      assert.equal(ramping(metrics, TARGET), 1, 'A ramps, B is still connecting');
      await slow.ready(B);
      metrics = await read();
      assert.equal(ramping(metrics, TARGET), 2);
      assert.equal(ramping(metrics, 'test:///plain'), 0);
      const now = Date.now();
      mock.method(Date, 'now', () => now + 30_001);
      try {
        metrics = await read();
      } finally {
        mock.restoreAll();
      }
      assert.equal(ramping(metrics, TARGET), 0, 'past the 30 s window');
    } finally {
      slow.destroy();
      plain.destroy();
      await provider.shutdown();
    }
  });

  test('grpc_lb.least_request.picks: tie, cheaper and only, counted per pick and kept after the channel closes', async () => {
    const { provider, read } = sdk();
    const h = PolicyHarness.create({
      policy: LEAST_REQUEST_POLICY,
      endpoints: [A, B],
      target: TARGET,
      meterProvider: provider,
    });
    const picks = async () => {
      const metrics = await read();
      const choice = (c: string) =>
        valueOf(metrics, 'grpc_lb.least_request.picks', {
          'grpc.target': TARGET,
          'grpc_lb.least_request.choice': c,
        });
      return { cheaper: choice('cheaper'), tie: choice('tie'), only: choice('only') };
    };
    try {
      await h.ready();
      // Neither endpoint has a latency estimate or a call in flight: equal costs.
      const first = h.call();
      if (first.kind !== 'complete') return assert.fail(first.kind);
      first.end({ latencyMs: 10 });
      assert.deepEqual(await picks(), { cheaper: 0, tie: 1, only: 0 });
      // Now one costs 10 ms × 1 and the other, never called, nothing.
      const second = h.call();
      if (second.kind !== 'complete') return assert.fail(second.kind);
      assert.notEqual(second.address, first.address);
      second.end({ latencyMs: 10 });
      assert.deepEqual(await picks(), { cheaper: 1, tie: 1, only: 0 });
      h.update({ endpoints: [A] });
      await h.settle();
      h.pickMany(3);
      assert.deepEqual(await picks(), { cheaper: 1, tie: 1, only: 3 });
      h.destroy();
      assert.deepEqual(await picks(), { cheaper: 1, tie: 1, only: 3 }, 'a counter never goes down');
    } finally {
      h.destroy();
      await provider.shutdown();
    }
  });
});

describe('grpc_lb.resolver.staleness', () => {
  test('0 while the last word was a success; since the last success while failing, since start before any; gone once stopped', async () => {
    const { provider, read } = sdk();
    const metrics = createMetrics({ meterProvider: provider }, statusNames(grpc), {
      warn: () => {},
    });
    const one = metrics.forTarget(TARGET);
    const other = metrics.forTarget(TARGET); // a second channel of the same target
    let now = 1_000_000;
    mock.method(Date, 'now', () => now);
    const staleness = async () => {
      const points = (await read()).get('grpc_lb.resolver.staleness') ?? [];
      return points.filter((p) => p.attributes['grpc.target'] === TARGET).map((p) => p.value);
    };
    try {
      one.resolverStarted();
      now += 4_000;
      assert.deepEqual(await staleness(), [4], 'no answer yet: since the start');
      one.resolverUpdate();
      now += 60_000;
      assert.deepEqual(await staleness(), [0], 'a quiet watch is not stale');
      one.resolverError();
      now += 2_500;
      assert.deepEqual(await staleness(), [62.5], 'failing: since the last success');
      other.resolverStarted();
      other.resolverUpdate();
      now += 500;
      assert.deepEqual(await staleness(), [63], 'the stalest channel of the target');
      one.resolverUpdate();
      assert.deepEqual(await staleness(), [0]);
      one.resolverError();
      one.resolverStopped();
      other.resolverStopped();
      now += 10_000;
      const after = await staleness();
      assert.ok(
        after.every((v) => v === 0),
        `a stopped resolver is not measured: ${JSON.stringify(after)}`,
      );
    } finally {
      mock.restoreAll();
      await provider.shutdown();
    }
  });
});

describe('metrics through register() and a real channel', () => {
  const service = {
    hello: {
      path: '/test.Echo/Hello',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  } as const;

  test('resolver updates and errors, calls by method, through the manual: resolver', async () => {
    const server = new grpc.Server();
    server.addService(service, {
      hello: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, Buffer.from('ok')),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const { provider, read } = sdk();
    const warnings: string[] = [];
    register({
      grpc,
      metrics: { meterProvider: provider },
      logger: { warn: (m) => warnings.push(m) },
    });
    const backends = new ManualEndpoints([{ host: '127.0.0.1', port }], { id: 'metrics-test' });
    const client = new grpc.Client(backends.target, grpc.credentials.createInsecure());
    try {
      const call = () =>
        new Promise<void>((resolve, reject) =>
          client.makeUnaryRequest(
            service.hello.path,
            service.hello.requestSerialize,
            service.hello.responseDeserialize,
            Buffer.alloc(0),
            (error) => (error ? reject(error) : resolve()),
          ),
        );
      for (let i = 0; i < 3; i++) await call();
      backends.fail(new Error('registry down'));
      const target = { 'grpc.target': backends.target };
      let metrics = await read();
      for (let i = 0; i < 100 && valueOf(metrics, 'grpc_lb.resolver.errors', target) === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        metrics = await read();
      }
      assert.equal(valueOf(metrics, 'grpc_lb.resolver.errors', target), 1);
      assert.equal(valueOf(metrics, 'grpc_lb.resolver.updates', target), 1);
      // Failing since its one answer: the endpoints in use grow older.
      for (
        let i = 0;
        i < 100 && valueOf(metrics, 'grpc_lb.resolver.staleness', target) === 0;
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        metrics = await read();
      }
      assert.ok((valueOf(metrics, 'grpc_lb.resolver.staleness', target) as number) > 0);
      assert.equal(
        valueOf(metrics, 'grpc.client.attempt.started', {
          ...target,
          'grpc.method': service.hello.path,
        }),
        3,
      );
      assert.equal(valueOf(metrics, 'grpc.subchannel.open_connections', target), 1);
      await call(); // the last endpoints are kept through the outage
    } finally {
      client.close();
      register({ grpc, metrics: false });
      server.forceShutdown();
      await provider.shutdown();
    }
  });

  test('@opentelemetry/api is loaded only when metrics are switched on', () => {
    const index = path.join(__dirname, '..', 'index.js');
    const loaded = (metrics: string) => {
      const script =
        `const core = require(${JSON.stringify(index)});` +
        `core.register(${metrics});` +
        `process.stdout.write(String(Object.keys(require.cache).some((k) => k.includes('@opentelemetry'))));`;
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      return run.stdout;
    };
    assert.equal(loaded(''), 'false');
    assert.equal(loaded('{ metrics: true }'), 'true');
  });

  test('metrics: true without @opentelemetry/api installed is a RegistrationError saying what to do', () => {
    const index = path.join(__dirname, '..', 'index.js');
    const script =
      // As if the optional peer were not installed.
      `const Module = require('node:module');` +
      `const resolve = Module._resolveFilename;` +
      `Module._resolveFilename = function (request, ...rest) {` +
      `  if (request === '@opentelemetry/api') throw Object.assign(new Error('Cannot find module'), { code: 'MODULE_NOT_FOUND' });` +
      `  return resolve.call(this, request, ...rest);` +
      `};` +
      `const core = require(${JSON.stringify(index)});` +
      `try { core.register({ metrics: true }); process.stdout.write('registered'); }` +
      `catch (e) { process.stdout.write(e.name + ': ' + e.message); }`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stdout,
      /^RegistrationError: .*npm install @opentelemetry\/api.*meterProvider/,
    );
  });
});

test('the README table lists exactly the instruments created, with their kinds and units', () => {
  const created: string[] = [];
  const instrument = (kind: string) => (name: string, options?: { unit?: string }) => {
    created.push(`${name} ${kind} ${options?.unit ?? ''}`);
    return { add: () => {}, record: () => {}, addCallback: () => {} };
  };
  createMetrics(
    {
      meterProvider: {
        getMeter: () => ({
          createCounter: instrument('counter'),
          createUpDownCounter: instrument('up-down counter'),
          createHistogram: instrument('histogram'),
          createObservableGauge: instrument('gauge'),
          createObservableCounter: instrument('async counter'),
        }),
      },
    },
    statusNames(grpc),
    { warn: () => {} },
  );
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const documented = [...readme.matchAll(/^\| `([a-z_.]+)` +\| ([a-z -]+?) +\| `([^`]+)` /gm)]
    .filter((m) => m[1]!.startsWith('grpc'))
    .map((m) => `${m[1]} ${m[2]} ${m[3]}`);
  assert.deepEqual([...documented].sort(), [...created].sort());
});
