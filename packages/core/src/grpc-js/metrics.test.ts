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
import { describe, test } from 'node:test';
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
import { ROUND_ROBIN_POLICY } from '../service-config';
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
            gauge = callback;
          },
        }),
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
