import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { experimental } from '@grpc/grpc-js';
import { normalizeEndpoint } from '../endpoint';
import { ConfigError } from '../errors';
import { LoadBalancerObserver, OBSERVER_OPTION, type ConfigEvent } from '../observer';
import { register } from '../register';
import type {
  EndpointResolver,
  ResolutionSink,
  ResolvedEndpoint,
  ResolverFactory,
} from '../resolver-contract';
import { ROUND_ROBIN_POLICY } from '../round-robin-config';
import {
  OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  OUTAGE_FAST_RETRY_WINDOW_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
  OPTION_MIN_REFRESH_INTERVAL_MS,
} from './resolver-adapter';
import type { GrpcLbEndpoint } from './endpoint-info';

/**
 * A resolver driven by the test (no server behind it): exposes the sink so
 * the test can push updates and errors, and counts start/refresh/stop.
 */
class ScriptedResolver implements EndpointResolver {
  sink: ResolutionSink | undefined;
  starts = 0;
  refreshes = 0;
  stops = 0;
  onStart: ((sink: ResolutionSink) => void) | undefined;
  start(sink: ResolutionSink): void {
    this.starts++;
    this.sink = sink;
    this.onStart?.(sink);
  }
  refresh(): void {
    this.refreshes++;
  }
  stop(): void {
    this.stops++;
    this.sink = undefined;
  }
}

const instances = new Map<string, ScriptedResolver>();
const scriptedFactory: ResolverFactory<string> = {
  scheme: 'scripted-test',
  parseTarget: (uri) => uri.path,
  defaultAuthority: (name) => name,
  create(name) {
    const resolver = new ScriptedResolver();
    instances.set(name, resolver);
    return resolver;
  },
};

const warnings: string[] = [];
register({
  grpc,
  resolvers: [scriptedFactory],
  logger: { warn: (m) => warnings.push(m) },
});

interface Delivery {
  endpoints: experimental.StatusOr<experimental.Endpoint[]>;
  attributes: { [key: string]: unknown };
  serviceConfig: experimental.StatusOr<unknown> | null;
  note: string;
}

let nextName = 1;
function open(options: grpc.ChannelOptions = {}) {
  const name = `svc-${nextName++}`;
  const deliveries: Delivery[] = [];
  let waiter: (() => void) | undefined;
  /** What the fake listener answers: false is the channel rejecting the update. */
  const verdict = { accept: true };
  const listener: experimental.ResolverListener = (endpoints, attributes, serviceConfig, note) => {
    deliveries.push({ endpoints, attributes, serviceConfig, note });
    waiter?.();
    return verdict.accept;
  };
  const resolver = grpc.experimental.createResolver(
    { scheme: 'scripted-test', path: name },
    listener,
    options,
  );
  const inner = instances.get(name)!;
  return {
    resolver,
    target: `scripted-test:${name}`,
    inner,
    deliveries,
    verdict,
    /** Resolves at the next delivery, or rejects after a deadline. */
    nextDelivery(timeoutMs = 2000): Promise<Delivery> {
      const count = deliveries.length;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no delivery within deadline')), timeoutMs);
        waiter = () => {
          if (deliveries.length > count) {
            clearTimeout(timer);
            waiter = undefined;
            resolve(deliveries[deliveries.length - 1]!);
          }
        };
      });
    },
  };
}

/** Lets pending immediates and timers of 0 ms run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20));
}

function keys(delivery: Delivery): string[] {
  assert.ok(delivery.endpoints.ok);
  return delivery.endpoints.value.map((e) => (e as GrpcLbEndpoint).grpcLb.key);
}

describe('resolver adapter', () => {
  test('never calls the listener synchronously from updateResolution', async () => {
    const r = open();
    r.inner.onStart = (sink) => sink.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    r.resolver.updateResolution();
    assert.equal(r.deliveries.length, 0);
    const delivery = await r.nextDelivery();
    assert.deepEqual(keys(delivery), ['127.0.0.2:1']);
    r.resolver.destroy();
  });

  test('carries weight, labels and zone on the endpoint and our policy as the default', async () => {
    const r = open();
    r.resolver.updateResolution();
    r.inner.sink!.update({
      endpoints: [{ host: '::1', port: 8, weight: 3, labels: { version: 'v2' }, zone: 'b' }],
    });
    const delivery = await r.nextDelivery();
    assert.ok(delivery.endpoints.ok);
    const endpoint = delivery.endpoints.value[0] as GrpcLbEndpoint;
    assert.deepEqual(endpoint.addresses, [{ host: '::1', port: 8 }]);
    assert.equal(endpoint.grpcLb.key, '[::1]:8');
    assert.equal(endpoint.grpcLb.weight, 3);
    assert.deepEqual(endpoint.grpcLb.labels, { version: 'v2' });
    assert.equal(endpoint.grpcLb.zone, 'b');
    assert.ok(delivery.serviceConfig?.ok);
    assert.deepEqual(
      (delivery.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ [ROUND_ROBIN_POLICY]: {} }],
    );
    r.resolver.destroy();
  });

  test('skips an identical update, in any order, and keeps one ConfigSelector', async () => {
    const r = open();
    r.resolver.updateResolution();
    const a = { host: '127.0.0.2', port: 1 };
    const b = { host: '127.0.0.3', port: 1 };
    r.inner.sink!.update({ endpoints: [a, b] });
    const first = await r.nextDelivery();
    r.inner.sink!.update({ endpoints: [b, a] });
    await settle();
    assert.equal(r.deliveries.length, 1);
    r.inner.sink!.update({ endpoints: [a] });
    const second = await r.nextDelivery();
    assert.deepEqual(keys(second), ['127.0.0.2:1']);
    const selectorKey = grpc.experimental.CHANNEL_ARGS_CONFIG_SELECTOR_KEY;
    assert.ok(first.attributes[selectorKey]);
    assert.equal(second.attributes, first.attributes);
    assert.equal(second.attributes[selectorKey], first.attributes[selectorKey]);
    r.resolver.destroy();
  });

  test('an endpoint changed under the same key, or removed and listed again, is delivered; a resend is not', async () => {
    const r = open();
    r.resolver.updateResolution();
    const base = {
      host: '127.0.0.2',
      port: 1,
      weight: 2,
      zone: 'a',
      labels: { v: '1' },
      forZones: ['a'],
    };
    const other = { host: '127.0.0.3', port: 1 };
    const delivered = (): unknown[] => {
      const last = r.deliveries[r.deliveries.length - 1]!;
      assert.ok(last.endpoints.ok);
      return last.endpoints.value.map((e) => ({ ...(e as GrpcLbEndpoint).grpcLb }));
    };
    const expect = (list: ResolvedEndpoint[]): unknown[] =>
      list.map((e) => ({ ...normalizeEndpoint(e) }));
    const steps: [string, ResolvedEndpoint[][], boolean][] = [
      ['first', [[base, other]], true],
      ['resent as new objects', [[structuredClone(base), { ...other }]], false],
      ['weight', [[{ ...base, weight: 3 }, other]], true],
      ['weight back', [[base, other]], true],
      ['a label', [[{ ...base, labels: { v: '2' } }, other]], true],
      ['labels back', [[base, other]], true],
      ['zone', [[{ ...base, zone: 'b' }, other]], true],
      ['zone back', [[base, other]], true],
      ['forZones', [[{ ...base, forZones: ['b'] }, other]], true],
      ['forZones dropped', [[{ ...base, forZones: undefined }, other]], true],
      ['forZones back', [[base, other]], true],
      ['a key removed', [[base]], true],
      ['and listed again', [[base, other]], true],
      ['unchanged again', [[{ ...other }, structuredClone(base)]], false],
      // Two updates before one delivery: the last is compared with what was delivered.
      ['a removal undone before delivery', [[other], [base, other]], false],
      ['a change that stays', [[other], [{ ...base, weight: 7 }, other]], true],
    ];
    for (const [what, updates, isDelivered] of steps) {
      const before = r.deliveries.length;
      for (const endpoints of updates) r.inner.sink!.update({ endpoints });
      await settle();
      assert.equal(r.deliveries.length, before + (isDelivered ? 1 : 0), what);
      const byKey = (list: unknown[]): unknown[] =>
        [...list].sort((x, y) =>
          (x as { key: string }).key.localeCompare((y as { key: string }).key),
        );
      assert.deepEqual(byKey(delivered()), byKey(expect(updates[updates.length - 1]!)), what);
    }
    r.resolver.destroy();
  });

  test('keeps the last good set on error and reports an error only when it has none', async () => {
    const r = open({ [OPTION_MIN_REFRESH_INTERVAL_MS]: 50 });
    r.resolver.updateResolution();
    r.inner.sink!.error(new Error('registry down'));
    const failed = await r.nextDelivery();
    assert.ok(!failed.endpoints.ok);
    assert.equal(failed.endpoints.error.code, grpc.status.UNAVAILABLE);
    assert.match(failed.endpoints.error.details, /scripted-test:svc-\d+: registry down/);
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    await r.nextDelivery();
    const before = r.deliveries.length;
    r.inner.sink!.error(new Error('registry down again'));
    await settle();
    assert.equal(
      r.deliveries.length,
      before,
      'an error after a good set must not reach the balancer',
    );
    assert.ok(warnings.some((w) => /keeping the last 1 endpoints: registry down again/.test(w)));
    r.resolver.destroy();
  });

  test('retries with backoff after an error, without being asked', async () => {
    const r = open({ [OPTION_MIN_REFRESH_INTERVAL_MS]: 100 });
    r.resolver.updateResolution();
    r.inner.sink!.error(new Error('down'));
    await r.nextDelivery();
    const deadline = Date.now() + 2000;
    while (r.inner.refreshes === 0 && Date.now() < deadline) await settle();
    assert.equal(r.inner.refreshes, 1);
    r.resolver.destroy();
  });

  test('a rejected update is retried with backoff, and delivered again even if unchanged', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
    const r = open({ [OPTION_MIN_REFRESH_INTERVAL_MS]: 100 });
    r.verdict.accept = false;
    r.resolver.updateResolution();
    const set = { endpoints: [{ host: '127.0.0.2', port: 1 }] };
    r.inner.sink!.update(set);
    t.mock.timers.tick(0);
    assert.equal(r.deliveries.length, 1);
    assert.equal(r.inner.refreshes, 0);
    t.mock.timers.tick(130); // the first backoff step: 100 ms ± 20%
    assert.equal(r.inner.refreshes, 1, 'the rejected update is retried without being asked');
    r.inner.sink!.update(set);
    t.mock.timers.tick(0);
    assert.equal(r.deliveries.length, 2, 'the same set is offered again after a rejection');
    t.mock.timers.tick(120); // under the second step's minimum (160 ms − 20%)
    assert.equal(r.inner.refreshes, 1, 'the backoff grows while updates are rejected');
    t.mock.timers.tick(80);
    assert.equal(r.inner.refreshes, 2);
    r.verdict.accept = true;
    r.inner.sink!.update(set);
    t.mock.timers.tick(0);
    assert.equal(r.deliveries.length, 3);
    t.mock.timers.tick(600_000);
    assert.equal(r.inner.refreshes, 2, 'an accepted update ends the retries');
    r.inner.sink!.update(set);
    t.mock.timers.tick(0);
    assert.equal(r.deliveries.length, 3, 'an identical update is skipped once accepted');
    r.resolver.destroy();
  });

  /**
   * Drives an error streak with mocked timers: each retry the adapter makes is answered with
   * another error. Returns how long each retry took to come, in ms (100 ms resolution).
   */
  function outage(t: TestContext, r: ReturnType<typeof open>, errors: number): number[] {
    const waits: number[] = [];
    for (let i = 0; i < errors; i++) {
      const before = r.inner.refreshes;
      r.inner.sink!.error(new Error('registry down'));
      t.mock.timers.tick(0);
      let waited = 0;
      while (r.inner.refreshes === before && waited < 120_000) {
        t.mock.timers.tick(100);
        waited += 100;
      }
      waits.push(waited);
    }
    return waits;
  }

  describe('retries while a registry that answered before is down', () => {
    const set = { endpoints: [{ host: '127.0.0.2', port: 1 }] };

    test('stay under the short cap (1.5 s by default) through the first two minutes of an outage', (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
      const r = open();
      r.resolver.updateResolution();
      r.inner.sink!.update(set);
      t.mock.timers.tick(0);
      const waits = outage(t, r, 30);
      assert.ok(
        waits.every((w) => w <= 1_500),
        `every retry within 1.5 s of the error: ${waits.join(', ')}`,
      );
      assert.ok(
        waits.slice(3).every((w) => w >= 1_200),
        `at the cap, jittered by at most 20% downwards: ${waits.join(', ')}`,
      );
      r.resolver.destroy();
    });

    test('after two minutes without a good answer, back off to the general cap', (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
      const r = open();
      r.resolver.updateResolution();
      r.inner.sink!.update(set);
      t.mock.timers.tick(0);
      const start = Date.now();
      const waits = outage(t, r, 100);
      const elapsed: number[] = [];
      let at = start;
      for (const w of waits) elapsed.push((at += w) - start);
      const early = waits.filter((_, i) => elapsed[i]! < OUTAGE_FAST_RETRY_WINDOW_MS - 2_000);
      assert.ok(
        early.every((w) => w <= 1_500),
        `within the window every retry comes within 1.5 s: ${early.join(', ')}`,
      );
      assert.ok(
        waits.slice(-3).every((w) => w >= 24_000),
        `long after the window the retries are ~30 s apart: ${waits.slice(-3).join(', ')}`,
      );
      r.resolver.destroy();
    });

    test('are still rate-limited: the channel asking again adds no refresh', (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
      const r = open();
      r.resolver.updateResolution();
      r.inner.sink!.update(set);
      t.mock.timers.tick(0);
      outage(t, r, 5);
      const before = r.inner.refreshes;
      r.inner.sink!.error(new Error('registry down'));
      t.mock.timers.tick(0);
      for (let i = 0; i < 1000; i++) r.resolver.updateResolution();
      t.mock.timers.tick(1_100);
      assert.equal(r.inner.refreshes, before, 'no refresh before the retry is due');
      t.mock.timers.tick(400);
      assert.equal(r.inner.refreshes, before + 1, 'one retry, however often the channel asked');
      r.resolver.destroy();
    });

    test('follow grpc-lb.max_outage_refresh_backoff_ms, never below the refresh interval', (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
      const r = open({
        [OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS]: 500,
        [OPTION_MIN_REFRESH_INTERVAL_MS]: 3_000,
      });
      r.resolver.updateResolution();
      r.inner.sink!.update(set);
      t.mock.timers.tick(0);
      const waits = outage(t, r, 10);
      assert.ok(
        waits.every((w) => w <= 3_000 && w >= 2_400),
        `capped at the refresh interval: ${waits.join(', ')}`,
      );
      r.resolver.destroy();
    });

    test('a registry that never answered backs off to grpc-lb.max_refresh_backoff_ms', (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate', 'Date'], now: 1_000_000 });
      const r = open({ [OPTION_MAX_REFRESH_BACKOFF_MS]: 20_000 });
      r.resolver.updateResolution();
      const waits = outage(t, r, 12);
      assert.ok(Math.max(...waits) >= 16_000, `grows to the long cap: ${waits.join(', ')}`);
      assert.ok(waits.every((w) => w <= 20_000));
      r.resolver.destroy();
    });

    test('an invalid grpc-lb.max_outage_refresh_backoff_ms fails the client constructor', () => {
      assert.throws(
        () => open({ [OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS]: -1 }),
        (e: unknown) =>
          e instanceof ConfigError && /grpc-lb\.max_outage_refresh_backoff_ms/.test(e.message),
      );
    });
  });

  test('rate-limits refresh requests to one per interval', async () => {
    const r = open({ [OPTION_MIN_REFRESH_INTERVAL_MS]: 60_000 });
    r.resolver.updateResolution();
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    await r.nextDelivery();
    for (let i = 0; i < 1000; i++) r.resolver.updateResolution();
    await settle();
    assert.equal(
      r.inner.refreshes,
      0,
      'start counts as a resolution: no refresh inside the interval',
    );
    assert.equal(r.inner.starts, 1);
    r.resolver.destroy();
  });

  test('skips invalid endpoints with a warning and never empties a good set with garbage', async () => {
    const r = open();
    r.resolver.updateResolution();
    r.inner.sink!.update({
      endpoints: [
        { host: '127.0.0.2', port: 1 },
        { host: 'not a host', port: 2 },
        { host: '127.0.0.3', port: 0 },
      ],
    });
    assert.deepEqual(keys(await r.nextDelivery()), ['127.0.0.2:1']);
    assert.ok(warnings.some((w) => /skipped an endpoint: endpoint host "not a host"/.test(w)));
    assert.ok(warnings.some((w) => /endpoint 127\.0\.0\.3 has port 0/.test(w)));
    const before = r.deliveries.length;
    r.inner.sink!.update({ endpoints: [{ host: '', port: -1 }] });
    await settle();
    assert.equal(r.deliveries.length, before);
    r.resolver.destroy();
  });

  test('an honest empty set is delivered', async () => {
    const r = open();
    r.resolver.updateResolution();
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    await r.nextDelivery();
    r.inner.sink!.update({ endpoints: [] });
    assert.deepEqual(keys(await r.nextDelivery()), []);
    r.resolver.destroy();
  });

  test('restarts after destroy and delivers again, ignoring the old sink', async () => {
    const r = open();
    r.inner.onStart = (sink) => sink.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    r.resolver.updateResolution();
    await r.nextDelivery();
    const oldSink = r.inner.sink!;
    r.resolver.destroy();
    assert.equal(r.inner.stops, 1);
    oldSink.update({ endpoints: [{ host: '127.0.0.9', port: 9 }] });
    await settle();
    assert.equal(r.deliveries.length, 1, 'no delivery after destroy');
    r.resolver.updateResolution();
    assert.equal(r.inner.starts, 2);
    assert.deepEqual(keys(await r.nextDelivery()), ['127.0.0.2:1']);
    r.resolver.destroy();
  });

  test('a resolver service config replaces the channel option; a bad one is an error naming the field', async () => {
    const r = open({
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: {} }] }),
    });
    r.resolver.updateResolution();
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    const fromChannel = await r.nextDelivery();
    assert.ok(fromChannel.serviceConfig?.ok);
    assert.deepEqual(
      (fromChannel.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ pick_first: {} }],
    );
    r.inner.sink!.update({
      endpoints: [{ host: '127.0.0.2', port: 1 }],
      serviceConfig: { methodConfig: [{ name: [{ service: 'a.B' }], timeout: '1s' }] },
    });
    const fromResolver = await r.nextDelivery();
    assert.ok(fromResolver.serviceConfig?.ok);
    assert.deepEqual(
      (fromResolver.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ [ROUND_ROBIN_POLICY]: {} }],
    );
    r.resolver.destroy();

    const bad = open();
    bad.resolver.updateResolution();
    bad.inner.sink!.update({
      endpoints: [{ host: '127.0.0.2', port: 1 }],
      serviceConfig: { loadBalancingConfig: [{ [ROUND_ROBIN_POLICY]: { panicThreshold: 101 } }] },
    });
    const rejected = await bad.nextDelivery();
    assert.ok(rejected.serviceConfig && !rejected.serviceConfig.ok);
    assert.match(
      rejected.serviceConfig.error.details,
      /loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.panicThreshold: expected an integer 0-100/,
    );
    bad.resolver.destroy();
  });

  test('an unknown policy in the channel option fails the client constructor, naming it', () => {
    const cases: [string, unknown[], RegExp][] = [
      [
        'static:///127.0.0.1:1',
        [{ 'grpc-lb.round_robbin': {} }],
        /loadBalancingConfig\[0\]: unknown grpc-lb policy "grpc-lb\.round_robbin" \(did you mean grpc-lb\.round_robin\?/,
      ],
      [
        `scripted-test:svc-${nextName++}`,
        [{ no_such_policy: {} }],
        /no policy listed is available here: "no_such_policy"/,
      ],
      [
        'static:///127.0.0.1:1',
        [{ 'grpc-lb.future_policy': {} }, { round_robin: {} }],
        /unknown grpc-lb policy "grpc-lb\.future_policy"/,
      ],
    ];
    for (const [target, loadBalancingConfig, message] of cases) {
      assert.throws(
        () =>
          new grpc.Client(target, grpc.credentials.createInsecure(), {
            'grpc.service_config': JSON.stringify({ loadBalancingConfig }),
          }),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        target,
      );
    }
  });

  test('a foreign unknown policy before a known one is the usual fallback list', () => {
    const lb = [{ future_policy: {} }, { round_robin: {} }];
    const client = new grpc.Client('static:///127.0.0.1:1', grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: lb }),
    });
    client.close();
  });

  test('an unknown policy from the resolver fails every call with UNAVAILABLE naming it', async () => {
    const name = `svc-${nextName++}`;
    const client = new grpc.Client(`scripted-test:${name}`, grpc.credentials.createInsecure());
    try {
      const call = new Promise<grpc.ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          '/a.B/C',
          (x: Buffer) => x,
          (x: Buffer) => x,
          Buffer.alloc(0),
          { deadline: Date.now() + 5_000 },
          (error) => resolve(error),
        );
      });
      const deadline = Date.now() + 2_000;
      while (!instances.get(name)?.sink && Date.now() < deadline) await settle();
      instances.get(name)!.sink!.update({
        endpoints: [{ host: '127.0.0.2', port: 1 }],
        serviceConfig: { loadBalancingConfig: [{ 'grpc-lb.round_robbin': {} }] },
      });
      const error = await call;
      assert.equal(error?.code, grpc.status.UNAVAILABLE);
      assert.match(error.details, /unknown grpc-lb policy "grpc-lb\.round_robbin"/);
    } finally {
      client.close();
    }
  });

  test('an unknown policy from the resolver after a good config keeps the good one, with a warning', async () => {
    const r = open();
    r.resolver.updateResolution();
    const endpoints = [{ host: '127.0.0.2', port: 1 }];
    const good = { loadBalancingConfig: [{ round_robin: {} }] };
    r.inner.sink!.update({ endpoints, serviceConfig: good });
    await r.nextDelivery();
    r.inner.sink!.update({
      endpoints: [...endpoints, { host: '127.0.0.3', port: 1 }],
      serviceConfig: { loadBalancingConfig: [{ no_such_policy: {} }] },
    });
    const kept = await r.nextDelivery();
    assert.ok(kept.serviceConfig?.ok);
    assert.deepEqual(
      (kept.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ round_robin: {} }],
    );
    assert.ok(
      warnings.some((w) => /"no_such_policy".*keeping the previous service config/.test(w)),
      warnings.join('\n'),
    );
    r.resolver.destroy();
  });

  test('a document delivered as text is parsed; a bad one is refused once, naming its source, and the last good kept', async () => {
    const observer = new LoadBalancerObserver();
    const events: ConfigEvent[] = [];
    observer.on('config', (e) => events.push(e));
    const r = open({ [OBSERVER_OPTION]: observer });
    r.resolver.updateResolution();
    const endpoints = [{ host: '127.0.0.2', port: 1 }];
    r.inner.sink!.update({ endpoints });
    await r.nextDelivery();
    assert.deepEqual(
      events.map((e) => [e.status, e.source]),
      [['applied', 'the default (no service config)']],
    );
    r.inner.sink!.update({
      endpoints,
      serviceConfig: '{"loadBalancingConfig":[{"round_robin":{}}]}',
      serviceConfigSource: 'etcd key config/a (revision 5)',
    });
    const fromText = await r.nextDelivery();
    assert.ok(fromText.serviceConfig?.ok);
    assert.deepEqual(
      (fromText.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ round_robin: {} }],
    );
    assert.deepEqual(events.at(-1), {
      target: r.target,
      status: 'applied',
      source: 'etcd key config/a (revision 5)',
      config: { loadBalancingConfig: [{ round_robin: {} }] },
    });
    const before = warnings.length;
    for (const hosts of [2, 3, 4]) {
      // The same bad revision with changing endpoints: warned once.
      r.inner.sink!.update({
        endpoints: Array.from({ length: hosts }, (_, i) => ({ host: `127.0.0.${i + 2}`, port: 1 })),
        serviceConfig: '{"loadBalancingConfig": [{"round_robin": {}}',
        serviceConfigSource: 'etcd key config/a (revision 6)',
      });
      const kept = await r.nextDelivery();
      assert.ok(kept.serviceConfig?.ok);
      assert.deepEqual(
        (kept.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
        [{ round_robin: {} }],
      );
    }
    const mine = warnings.slice(before);
    assert.equal(mine.length, 1, mine.join('\n'));
    assert.match(
      mine[0]!,
      /service config from etcd key config\/a \(revision 6\): not valid JSON: .*keeping the previous service config \(etcd key config\/a \(revision 5\)\)/,
    );
    assert.equal(events.at(-1)?.status, 'rejected');
    const [state] = observer.serviceConfigs().filter((c) => c.target === r.target);
    assert.equal(state?.source, 'etcd key config/a (revision 5)');
    assert.match(state?.rejected?.error ?? '', /revision 6/);
    // Deleted: the channel's own config (here the default) again.
    r.inner.sink!.update({ endpoints });
    await r.nextDelivery();
    assert.equal(events.at(-1)?.status, 'applied');
    assert.equal(events.at(-1)?.source, 'the default (no service config)');
    r.resolver.destroy();
  });

  test('a resolver error or warning that quotes a secret is redacted before anyone sees it', async () => {
    const r = open();
    r.resolver.updateResolution();
    const before = warnings.length;
    r.inner.sink!.warn('GET http://user:hunter2@10.0.0.5:8500/v1/x?token=hunter3 answered 500');
    r.inner.sink!.error(new Error('connect to https://app:hunter4@etcd:2379 refused'));
    const failed = await r.nextDelivery();
    assert.ok(!failed.endpoints.ok);
    assert.doesNotMatch(failed.endpoints.error.details, /hunter/);
    assert.match(failed.endpoints.error.details, /\*\*\*@etcd:2379/);
    const mine = warnings.slice(before).join('\n');
    assert.match(mine, /\*\*\*@10\.0\.0\.5:8500/);
    assert.doesNotMatch(mine, /hunter/);
    r.resolver.destroy();
  });

  test('a bad first document, with no earlier config to keep, fails calls naming it', async () => {
    const r = open();
    r.resolver.updateResolution();
    r.inner.sink!.update({
      endpoints: [{ host: '127.0.0.2', port: 1 }],
      serviceConfig: 'not json',
      serviceConfigSource: 'Consul KV grpc-lb/a (index 9)',
    });
    const refused = await r.nextDelivery();
    assert.ok(refused.serviceConfig && !refused.serviceConfig.ok);
    assert.match(
      refused.serviceConfig.error.details,
      /service config from Consul KV grpc-lb\/a \(index 9\): not valid JSON/,
    );
    assert.ok(
      warnings.some((w) =>
        /no earlier service config to keep: calls fail until it is fixed/.test(w),
      ),
    );
    r.resolver.destroy();
  });

  test('unknown fields in a resolver config are dropped with one warning naming them', async () => {
    const r = open();
    r.resolver.updateResolution();
    const serviceConfig = {
      loadBalancingConfig: [
        { [ROUND_ROBIN_POLICY]: { slowStart: { window: '1s', curve: 'x' }, futureOption: true } },
      ],
    };
    const before = warnings.length;
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.2', port: 1 }], serviceConfig });
    const delivery = await r.nextDelivery();
    assert.ok(delivery.serviceConfig?.ok);
    assert.deepEqual(
      (delivery.serviceConfig.value as { loadBalancingConfig: unknown }).loadBalancingConfig,
      [{ [ROUND_ROBIN_POLICY]: { slowStart: { window: '1s' } } }],
    );
    r.inner.sink!.update({ endpoints: [{ host: '127.0.0.3', port: 1 }], serviceConfig });
    await r.nextDelivery();
    const mine = warnings.slice(before).filter((w) => /ignor/.test(w));
    assert.equal(mine.length, 1, mine.join('\n'));
    assert.match(
      mine[0]!,
      /loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.slowStart\.curve, loadBalancingConfig\[0\]\.grpc-lb\.round_robin\.futureOption/,
    );
    r.resolver.destroy();
  });

  test('reads fractional method timeouts correctly (grpc-js alone reads "0.3s" as 3 ns)', async () => {
    const r = open();
    r.resolver.updateResolution();
    r.inner.sink!.update({
      endpoints: [{ host: '127.0.0.2', port: 1 }],
      serviceConfig: {
        methodConfig: [
          { name: [{}], timeout: '0.3s' },
          { name: [{ service: 's' }], timeout: '2s' },
        ],
      },
    });
    const delivery = await r.nextDelivery();
    assert.ok(delivery.serviceConfig?.ok);
    const { methodConfig } = delivery.serviceConfig.value as {
      methodConfig: { timeout: unknown }[];
    };
    assert.deepEqual(methodConfig[0]!.timeout, { seconds: 0, nanos: 300_000_000 });
    assert.deepEqual(methodConfig[1]!.timeout, { seconds: 2, nanos: 0 });
    r.resolver.destroy();
  });

  test('leaves no timer behind after destroy', async () => {
    const live = new Set<unknown>();
    const realSetTimeout = globalThis.setTimeout;
    const realClearTimeout = globalThis.clearTimeout;
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const timer = realSetTimeout(() => {
        live.delete(timer);
        fn(...args);
      }, ms);
      live.add(timer);
      return timer;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((timer: NodeJS.Timeout | undefined) => {
      live.delete(timer);
      realClearTimeout(timer);
    }) as typeof clearTimeout;
    try {
      const r = open({ [OPTION_MIN_REFRESH_INTERVAL_MS]: 60_000 });
      r.resolver.updateResolution();
      r.inner.sink!.error(new Error('down'));
      await r.nextDelivery();
      r.resolver.updateResolution();
      assert.ok(live.size > 0, 'a backoff retry is pending');
      r.resolver.destroy();
      assert.equal(live.size, 0);
    } finally {
      globalThis.setTimeout = realSetTimeout;
      globalThis.clearTimeout = realClearTimeout;
    }
  });
});

test('a secret-like part of a target the parser accepted is redacted in failed calls and warnings', async () => {
  const secret = 'S3CR3T-value-41';
  const name = `leak;api_token=${secret}`;
  const client = new grpc.Client(`scripted-test:///${name}`, grpc.credentials.createInsecure());
  try {
    const failed = new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        '/x.Y/Z',
        (value: Buffer) => value,
        (value: Buffer) => value,
        Buffer.alloc(0),
        { deadline: Date.now() + 5_000 },
        (error) => resolve(error!),
      );
    });
    let resolver: ScriptedResolver | undefined;
    for (let i = 0; i < 100 && !resolver?.sink; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      resolver = instances.get(name);
    }
    assert.ok(resolver?.sink, 'the resolver was started');
    resolver.sink.error(new Error('registry down'));
    const error = await failed;
    assert.equal(error.code, grpc.status.UNAVAILABLE);
    assert.match(error.details, /registry down/);
    assert.ok(!error.details.includes(secret), error.details);
    resolver.sink.update({ endpoints: [{ host: '127.0.0.2', port: 1 }] });
    resolver.sink.error(new Error('registry down again'));
    // The warning that the last endpoints are kept (it quotes the target) must have come.
    for (let i = 0; i < 100 && !warnings.some((w) => w.includes('registry down again')); i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(
      warnings.some((w) => w.includes('registry down again') && w.includes('leak;api_token=')),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.every((warning) => !warning.includes(secret)),
      warnings.filter((warning) => warning.includes(secret)).join('\n'),
    );
  } finally {
    client.close();
  }
});
