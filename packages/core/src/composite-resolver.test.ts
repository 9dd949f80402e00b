import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { FIRST_RESOLUTION_WAIT_MS, SOURCE_LABEL } from './composite-resolver';
import { createCompositeResolverFactory } from './composite-target';
import { ManualEndpoints, manualResolverFactory } from './manual-target';
import type {
  EndpointResolver,
  Resolution,
  ResolutionSink,
  ResolvedEndpoint,
  ResolverFactory,
} from './resolver-contract';
import { staticResolverFactory } from './static-target';
import { parseTargetUri } from './target-uri';

/** A source whose resolver throws from start() or refresh(), as a buggy resolver package could. */
const throwingFactory: ResolverFactory = {
  scheme: 'throws',
  parseTarget: () => ({}),
  defaultAuthority: () => 'x',
  create: (): EndpointResolver => ({
    start() {
      throw new Error('boom at start');
    },
    refresh() {
      throw new Error('boom at refresh');
    },
    stop() {},
  }),
};

const factories: ResolverFactory[] = [
  staticResolverFactory,
  manualResolverFactory,
  throwingFactory,
];
const composite = createCompositeResolverFactory({
  get: (scheme) => factories.find((f) => f.scheme === scheme),
  schemes: () => factories.map((f) => f.scheme),
});

interface Recorded {
  updates: Resolution[];
  errors: string[];
  warnings: string[];
  sink: ResolutionSink;
}

function recorder(): Recorded {
  const r: Recorded = {
    updates: [],
    errors: [],
    warnings: [],
    sink: {
      update: (res) => r.updates.push(res),
      error: (e) => r.errors.push(e.message),
      warn: (m) => r.warnings.push(m),
    },
  };
  return r;
}

let sources: ManualEndpoints[] = [];
function source(initial?: readonly ResolvedEndpoint[] | Resolution): ManualEndpoints {
  const s = new ManualEndpoints(initial);
  sources.push(s);
  return s;
}

function create(query: string): EndpointResolver {
  const target = `composite:///svc?${query}`;
  return composite.create(composite.parseTarget(parseTargetUri(target), target), {
    target,
    channelOptions: {},
  });
}

const ep = (
  host: string,
  labels: Record<string, string> = {},
  weight?: number,
): ResolvedEndpoint =>
  weight === undefined ? { host, port: 1, labels } : { host, port: 1, labels, weight };

function summary(res: Resolution | undefined): string[] {
  return (res?.endpoints ?? []).map(
    (e) =>
      `${e.host} ${Object.entries(e.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}${e.weight === undefined ? '' : ` w${e.weight}`}`,
  );
}

describe('composite resolver', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => {
    mock.timers.reset();
    for (const s of sources) s.dispose();
    sources = [];
  });

  test('the union of every source, each endpoint labelled with its source, sent once all have answered', () => {
    const vms = source();
    const pods = source();
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    vms.update([ep('10.0.0.1', { version: 'v1' })]);
    assert.equal(r.updates.length, 0, 'pods has not answered: nothing yet');
    pods.update([ep('10.0.1.1', { version: 'v1', source: 'from-the-registry' })]);
    assert.deepEqual(summary(r.updates.at(-1)), [
      '10.0.0.1 version=v1,source=vms',
      '10.0.1.1 version=v1,source=pods',
    ]);
    assert.match(r.updates.at(-1)!.note!, /vms: 1.*pods: 1/);
    // Later updates of one source flow at once, the other's set kept.
    pods.update([ep('10.0.1.1'), ep('10.0.1.2')]);
    assert.deepEqual(summary(r.updates.at(-1)), [
      '10.0.0.1 version=v1,source=vms',
      `10.0.1.1 ${SOURCE_LABEL}=pods`,
      '10.0.1.2 source=pods',
    ]);
    resolver.stop();
  });

  test('a source that does not answer holds the first resolution back for a bounded time only', () => {
    const vms = source([ep('10.0.0.1')]);
    const pods = source();
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    mock.timers.tick(FIRST_RESOLUTION_WAIT_MS - 1);
    assert.equal(r.updates.length, 0);
    mock.timers.tick(1);
    assert.deepEqual(summary(r.updates.at(-1)), ['10.0.0.1 source=vms']);
    assert.match(r.updates.at(-1)!.note!, /pods: no answer yet/);
    pods.update([ep('10.0.1.1')]);
    assert.equal(r.updates.at(-1)!.endpoints.length, 2);
    resolver.stop();
  });

  test('an empty source is honest: it answers, with nothing', () => {
    const vms = source([ep('10.0.0.1')]);
    const pods = source([]);
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    assert.deepEqual(summary(r.updates.at(-1)), ['10.0.0.1 source=vms']);
    assert.match(r.updates.at(-1)!.note!, /pods: 0/);
    vms.update([]);
    assert.deepEqual(r.updates.at(-1)!.endpoints, []);
    assert.deepEqual(r.errors, []);
    resolver.stop();
  });

  test('the same address from two sources is one endpoint: the first-listed source’s labels, weight and zone', () => {
    const vms = source([
      { host: '10.0.0.1', port: 1, labels: { version: 'v1' }, weight: 3, zone: 'a' },
    ]);
    const pods = source([
      { host: '10.0.0.1', port: 1, labels: { version: 'v2' }, weight: 9, zone: 'b' },
      ep('10.0.1.1'),
    ]);
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    assert.deepEqual(r.updates.at(-1)!.endpoints[0], {
      host: '10.0.0.1',
      port: 1,
      labels: { version: 'v1', source: 'vms' },
      weight: 3,
      zone: 'a',
    });
    assert.equal(r.updates.at(-1)!.endpoints.length, 2);
    assert.match(
      r.updates.at(-1)!.note!,
      /1 address in two sources, kept from the first listed: 10\.0\.0\.1:1 \(vms, pods\)/,
    );
    resolver.stop();
  });

  test('weight.<name> multiplies the weights of that source (0: known, no share)', () => {
    const vms = source([ep('10.0.0.1', {}, 2), ep('10.0.0.2')]);
    const pods = source([ep('10.0.1.1', {}, 5)]);
    const r = recorder();
    const resolver = create(`vms=${vms.target}&weight.vms=3&pods=${pods.target}&weight.pods=0`);
    resolver.start(r.sink);
    assert.deepEqual(summary(r.updates.at(-1)), [
      '10.0.0.1 source=vms w6',
      '10.0.0.2 source=vms w3',
      '10.0.1.1 source=pods w0',
    ]);
    resolver.stop();
  });

  test('one source down keeps its last good set; the others stay live; it is retried alone and recovers', () => {
    const vms = source([ep('10.0.0.1')]);
    const pods = source([ep('10.0.1.1')]);
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    vms.fail(new Error('consul: connection refused'));
    vms.fail(new Error('consul: connection refused'));
    assert.deepEqual(summary(r.updates.at(-1)), ['10.0.0.1 source=vms', '10.0.1.1 source=pods']);
    assert.match(
      r.updates.at(-1)!.note!,
      /vms: 1, failing, last good kept: consul: connection refused/,
    );
    assert.equal(
      r.warnings.filter((w) =>
        /source vms: resolution failed, keeping its last 1 endpoints/.test(w),
      ).length,
      1,
      'one warning per outage',
    );
    assert.deepEqual(r.errors, [], 'the composite itself is not in error');
    pods.update([ep('10.0.1.1'), ep('10.0.1.2')]);
    assert.equal(r.updates.at(-1)!.endpoints.length, 3, 'pods still followed');
    const before = vms.refreshCount;
    mock.timers.tick(1_600);
    assert.ok(vms.refreshCount > before, 'the failing source is asked again within the outage cap');
    assert.equal(pods.refreshCount, 0, 'the healthy source is left alone');
    vms.update([ep('10.0.0.2')]);
    assert.deepEqual(summary(r.updates.at(-1)), [
      '10.0.0.2 source=vms',
      '10.0.1.1 source=pods',
      '10.0.1.2 source=pods',
    ]);
    assert.ok(r.warnings.some((w) => /source vms: resolving again/.test(w)));
    resolver.stop();
  });

  test('a source that never answered, failing, leaves the others’ union; all failing is an error naming each', () => {
    const vms = source();
    const pods = source();
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    vms.fail(new Error('403 forbidden'));
    assert.deepEqual(r.errors, [], 'pods may still answer');
    pods.fail(new Error('kube-apiserver unreachable'));
    assert.equal(r.errors.length, 1);
    assert.match(
      r.errors[0]!,
      /no source has answered with endpoints: vms: 403 forbidden; pods: kube-apiserver unreachable/,
    );
    pods.update([ep('10.0.1.1')]);
    assert.deepEqual(summary(r.updates.at(-1)), ['10.0.1.1 source=pods']);
    assert.match(r.updates.at(-1)!.note!, /vms: 403 forbidden/);
    resolver.stop();
  });

  test('the service config comes from the source that carries one; two carrying: the first listed, with one warning', () => {
    const vms = source({ endpoints: [ep('10.0.0.1')] });
    const pods = source({
      endpoints: [ep('10.0.1.1')],
      serviceConfig: '{"loadBalancingConfig":[{"grpc-lb.round_robin":{}}]}',
      serviceConfigSource: 'ConfigMap prod/hello-lb service-config.json (resourceVersion 7)',
    });
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    assert.equal(
      r.updates.at(-1)!.serviceConfig,
      '{"loadBalancingConfig":[{"grpc-lb.round_robin":{}}]}',
    );
    assert.equal(
      r.updates.at(-1)!.serviceConfigSource,
      'source pods: ConfigMap prod/hello-lb service-config.json (resourceVersion 7)',
    );
    vms.update({
      endpoints: [ep('10.0.0.1')],
      serviceConfig: { loadBalancingConfig: [] },
      serviceConfigSource: 'Consul KV x (index 3)',
    });
    vms.update({
      endpoints: [ep('10.0.0.1'), ep('10.0.0.2')],
      serviceConfig: { loadBalancingConfig: [] },
      serviceConfigSource: 'Consul KV x (index 3)',
    });
    assert.equal(r.updates.at(-1)!.serviceConfigSource, 'source vms: Consul KV x (index 3)');
    assert.equal(
      r.warnings.filter((w) =>
        /sources vms, pods each carry a service config; following the first listed, vms/.test(w),
      ).length,
      1,
    );
    // The carrying source in an outage: its document is kept with its endpoints.
    vms.fail(new Error('down'));
    assert.equal(r.updates.at(-1)!.serviceConfigSource, 'source vms: Consul KV x (index 3)');
    resolver.stop();
  });

  test('a source whose resolver throws is a failing source, not a crash', () => {
    const pods = source([ep('10.0.1.1')]);
    const r = recorder();
    const resolver = create(`bad=throws:///x&pods=${pods.target}`);
    resolver.start(r.sink);
    assert.deepEqual(summary(r.updates.at(-1)), ['10.0.1.1 source=pods']);
    assert.match(r.updates.at(-1)!.note!, /bad: failed to start: boom at start/);
    assert.doesNotThrow(() => resolver.refresh());
    mock.timers.tick(60_000);
    resolver.stop();
  });

  test('stop: no sink call afterwards, no timer left; start again resumes with the kept sets', () => {
    const vms = source([ep('10.0.0.1')]);
    const pods = source();
    const r = recorder();
    const resolver = create(`vms=${vms.target}&pods=${pods.target}`);
    resolver.start(r.sink);
    vms.fail(new Error('down')); // arms a retry timer
    resolver.stop();
    assert.equal(vms.activeResolvers, 0);
    assert.equal(pods.activeResolvers, 0);
    const seen = r.updates.length + r.errors.length;
    const refreshes = vms.refreshCount;
    mock.timers.tick(FIRST_RESOLUTION_WAIT_MS * 10);
    assert.equal(r.updates.length + r.errors.length, seen, 'silent after stop');
    assert.equal(vms.refreshCount, refreshes, 'no retry after stop');
    const again = recorder();
    vms.update([ep('10.0.0.3')]);
    pods.update([ep('10.0.1.1')]);
    resolver.start(again.sink);
    assert.deepEqual(summary(again.updates.at(-1)), [
      '10.0.0.3 source=vms',
      '10.0.1.1 source=pods',
    ]);
    resolver.stop();
  });
});
