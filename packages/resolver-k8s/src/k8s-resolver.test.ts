/**
 * K8sEndpointResolver's list/watch state machine against a scripted FakeK8sApi: the first list,
 * watch events, bookmarks, 410 Gone, watches the server ends, short-watch pauses, API errors,
 * refresh, stop and restart. The real kube-apiserver (RBAC, real watches) is exercised in
 * test/k8s-resolver.test.ts; here every answer is chosen by the test.
 */
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import {
  checkServiceConfig,
  parseTargetUri,
  type Resolution,
  type ResolutionSink,
} from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import type {
  ConfigMapLike,
  IstioKind,
  IstioObjectLike,
  IstioVersion,
  K8sApi,
  K8sConnectionOptions,
  PodLike,
  WatchEventType,
} from './k8s-client';
import { describeFailure, K8sEndpointResolver, WATCH_IDLE_TIMEOUT_MS } from './k8s-resolver';
import type { K8sEndpointSource } from './k8s-target';
import { parseK8sTarget } from './k8s-target';
import type { EndpointsLike } from './endpoints';
import type { ServiceLike, SliceLike } from './slices';

const SERVER = 'https://fake-apiserver.test:6443';

type ListAnswer = { items: SliceLike[]; resourceVersion: string } | { error: unknown };
type EndpointsAnswer = { items: EndpointsLike[]; resourceVersion: string } | { error: unknown };
type ConfigMapAnswer = { items: ConfigMapLike[]; resourceVersion: string } | { error: unknown };
type PodAnswer = { items: PodLike[]; resourceVersion: string } | { error: unknown };
type IstioAnswer = { items: IstioObjectLike[]; resourceVersion: string } | { error: unknown };

/** One watch the resolver opened on the FakeK8sApi; the test drives it. */
class FakeWatch {
  aborted = false;
  ended = false;
  /** What is watched: EndpointSlices, core/v1 Endpoints, a ConfigMap, or Pods. */
  kind:
    | 'endpointslices'
    | 'endpoints'
    | 'configmaps'
    | 'pods'
    | 'virtualservices'
    | 'destinationrules' = 'endpointslices';
  constructor(
    readonly namespace: string,
    readonly service: string,
    readonly resourceVersion: string,
    private readonly onEvent: (type: WatchEventType, object: unknown) => void,
    private readonly done: (error: unknown) => void,
    private readonly doneOnAbort: boolean,
  ) {}

  /** Delivers an event, as the server would (even after an abort: the resolver must ignore it). */
  emit(type: WatchEventType, object: unknown): void {
    this.onEvent(type, object);
  }

  /** Ends the watch: `null` is the server closing it, anything else an error. */
  end(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.done(error);
  }

  abort(): void {
    this.aborted = true;
    // @kubernetes/client-node's Watch calls done(AbortError) when its request is aborted.
    if (this.doneOnAbort) {
      setImmediate(() => {
        const error = new Error('The user aborted a request.');
        error.name = 'AbortError';
        this.end(error);
      });
    }
  }
}

/**
 * A FAKE Kubernetes API for unit tests: lists answer from `listAnswers` (in order, the last one
 * repeated), the Service is `service`, and every watch is recorded in `watches` for the test to
 * push events into and end. The real API server is tested in test/k8s-resolver.test.ts.
 */
class FakeK8sApi implements K8sApi {
  readonly server = SERVER;
  readonly defaultNamespace: string;
  listAnswers: ListAnswer[];
  service: ServiceLike | undefined;
  readonly listCalls: string[] = [];
  readonly serviceCalls: string[] = [];
  /** The AbortSignal each list, get and watch was given (undefined: none). */
  readonly signals: (AbortSignal | undefined)[] = [];
  /** While set, reading the Service fails with it (a 403, say). */
  serviceError: Error | undefined;
  /** While set, reads of the Service wait for it. */
  serviceGate: Promise<void> | undefined;
  readonly watches: FakeWatch[] = [];
  /** Mimic client-node: an aborted watch's `done` is called with an AbortError. */
  doneOnAbort = false;
  /** Called with each new watch before `watchSlices` resolves (client-node reports HTTP errors so). */
  beforeOpen: ((watch: FakeWatch) => void) | undefined;
  /** Called with each new watch just after `watchSlices` resolved. */
  afterOpen: ((watch: FakeWatch) => void) | undefined;
  /** While set, lists wait for it. */
  listGate: Promise<void> | undefined;
  /** Answers to Endpoints lists, as `listAnswers` (default: refused, 403). */
  endpointsAnswers: EndpointsAnswer[] = [{ error: forbiddenEndpoints() }];
  readonly endpointsCalls: string[] = [];
  /** Answers to ConfigMap lists, as `listAnswers` (default: none exists). */
  configMapAnswers: ConfigMapAnswer[] = [{ items: [], resourceVersion: '1' }];
  readonly configMapCalls: string[] = [];
  /** While set, ConfigMap lists wait for it. */
  configMapGate: Promise<void> | undefined;
  /** Answers to Pod lists, as `listAnswers` (default: no Pods). */
  podAnswers: PodAnswer[] = [{ items: [], resourceVersion: '1' }];
  /** `namespace selector` of each Pod list (`-`: no selector). */
  readonly podCalls: string[] = [];
  /** While set, Pod lists wait for it. */
  podGate: Promise<void> | undefined;
  /** What API discovery says of networking.istio.io (an error: discovery fails so). */
  istioServed: IstioVersion | undefined | { error: unknown } = 'v1';
  readonly istioVersionCalls: number[] = [];
  /** Answers to VirtualService and DestinationRule lists, as `listAnswers` (default: none). */
  readonly istioAnswers: Record<IstioKind, IstioAnswer[]> = {
    virtualservices: [{ items: [], resourceVersion: '1' }],
    destinationrules: [{ items: [], resourceVersion: '1' }],
  };
  /** `kind version namespace` of each Istio list. */
  readonly istioCalls: string[] = [];
  /** While set, Istio lists wait for it. */
  istioGate: Promise<void> | undefined;

  constructor(
    listAnswers: ListAnswer[],
    options: { service?: ServiceLike; defaultNamespace?: string } = {},
  ) {
    this.listAnswers = listAnswers;
    this.service = options.service;
    this.defaultNamespace = options.defaultNamespace ?? 'default';
  }

  get lastWatch(): FakeWatch {
    const watch = this.watches
      .filter((w) => w.kind === 'endpointslices' || w.kind === 'endpoints')
      .at(-1);
    assert.ok(watch, 'no watch was opened');
    return watch;
  }

  get lastPodWatch(): FakeWatch {
    const watch = this.watches.filter((w) => w.kind === 'pods').at(-1);
    assert.ok(watch, 'no Pod watch was opened');
    return watch;
  }

  async listPods(
    namespace: string,
    labelSelector: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ items: PodLike[]; resourceVersion: string }> {
    this.podCalls.push(`${namespace} ${labelSelector ?? '-'}`);
    this.signals.push(signal);
    const answers = this.podAnswers;
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    await this.podGate;
    assert.ok(answer, 'FakeK8sApi has no Pod answer');
    if ('error' in answer) throw answer.error;
    return { items: [...answer.items], resourceVersion: answer.resourceVersion };
  }

  watchPods(
    namespace: string,
    labelSelector: string | undefined,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    return this.openWatch(
      'pods',
      namespace,
      labelSelector ?? '-',
      resourceVersion,
      onEvent,
      done,
      signal,
    );
  }

  lastIstioWatch(kind: IstioKind): FakeWatch {
    const watch = this.watches.filter((w) => w.kind === kind).at(-1);
    assert.ok(watch, `no ${kind} watch was opened`);
    return watch;
  }

  async istioVersion(signal?: AbortSignal): Promise<IstioVersion | undefined> {
    this.istioVersionCalls.push(1);
    this.signals.push(signal);
    await Promise.resolve();
    const served = this.istioServed;
    if (typeof served === 'object') throw served.error;
    return served;
  }

  async listIstio(
    kind: IstioKind,
    version: IstioVersion,
    namespace: string,
    signal?: AbortSignal,
  ): Promise<{ items: IstioObjectLike[]; resourceVersion: string }> {
    this.istioCalls.push(`${kind} ${version} ${namespace}`);
    this.signals.push(signal);
    const answers = this.istioAnswers[kind];
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    await this.istioGate;
    assert.ok(answer, `FakeK8sApi has no ${kind} answer`);
    if ('error' in answer) throw answer.error;
    return { items: [...answer.items], resourceVersion: answer.resourceVersion };
  }

  watchIstio(
    kind: IstioKind,
    version: IstioVersion,
    namespace: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    return this.openWatch(kind, namespace, version, resourceVersion, onEvent, done, signal);
  }

  get lastConfigWatch(): FakeWatch {
    const watch = this.watches.filter((w) => w.kind === 'configmaps').at(-1);
    assert.ok(watch, 'no ConfigMap watch was opened');
    return watch;
  }

  async listConfigMaps(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<{ items: ConfigMapLike[]; resourceVersion: string }> {
    this.configMapCalls.push(`${namespace}/${name}`);
    this.signals.push(signal);
    const answers = this.configMapAnswers;
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    await this.configMapGate;
    assert.ok(answer, 'FakeK8sApi has no ConfigMap answer');
    if ('error' in answer) throw answer.error;
    return { items: [...answer.items], resourceVersion: answer.resourceVersion };
  }

  watchConfigMaps(
    namespace: string,
    name: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    return this.openWatch('configmaps', namespace, name, resourceVersion, onEvent, done, signal);
  }

  async listSlices(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<{ items: SliceLike[]; resourceVersion: string }> {
    this.listCalls.push(`${namespace}/${service}`);
    this.signals.push(signal);
    const answer = this.listAnswers.length > 1 ? this.listAnswers.shift() : this.listAnswers[0];
    await this.listGate;
    assert.ok(answer, 'FakeK8sApi has no list answer');
    if ('error' in answer) throw answer.error;
    return { items: [...answer.items], resourceVersion: answer.resourceVersion };
  }

  async readService(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<ServiceLike | undefined> {
    this.serviceCalls.push(`${namespace}/${service}`);
    this.signals.push(signal);
    await this.serviceGate;
    if (this.serviceError !== undefined) throw this.serviceError;
    return this.service;
  }

  async listEndpoints(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<{ items: EndpointsLike[]; resourceVersion: string }> {
    this.endpointsCalls.push(`${namespace}/${service}`);
    this.signals.push(signal);
    const answers = this.endpointsAnswers;
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    await this.listGate;
    assert.ok(answer, 'FakeK8sApi has no Endpoints answer');
    if ('error' in answer) throw answer.error;
    return { items: [...answer.items], resourceVersion: answer.resourceVersion };
  }

  async watchEndpoints(
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    return this.openWatch('endpoints', namespace, service, resourceVersion, onEvent, done, signal);
  }

  watchSlices(
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    return this.openWatch(
      'endpointslices',
      namespace,
      service,
      resourceVersion,
      onEvent,
      done,
      signal,
    );
  }

  private async openWatch(
    kind: FakeWatch['kind'],
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }> {
    this.signals.push(signal);
    const watch = new FakeWatch(
      namespace,
      service,
      resourceVersion,
      onEvent,
      done,
      this.doneOnAbort,
    );
    watch.kind = kind;
    this.watches.push(watch);
    await Promise.resolve();
    this.beforeOpen?.(watch);
    const afterOpen = this.afterOpen;
    if (afterOpen) setImmediate(() => afterOpen(watch));
    return watch;
  }
}

type SinkEvent = { update: Resolution } | { error: Error } | { warn: string };

class RecordingSink implements ResolutionSink {
  readonly events: SinkEvent[] = [];
  update(resolution: Resolution): void {
    this.events.push({ update: resolution });
  }
  error(error: Error): void {
    this.events.push({ error });
  }
  warn(message: string): void {
    this.events.push({ warn: message });
  }
  get updates(): Resolution[] {
    return this.events.flatMap((e) => ('update' in e ? [e.update] : []));
  }
  get errors(): Error[] {
    return this.events.flatMap((e) => ('error' in e ? [e.error] : []));
  }
  get warnings(): string[] {
    return this.events.flatMap((e) => ('warn' in e ? [e.warn] : []));
  }
  /** `host:port` of each endpoint of the last update. */
  lastHosts(): string[] {
    const last = this.updates.at(-1);
    assert.ok(last, 'no update yet');
    return last.endpoints.map((e) => `${e.host}:${e.port}`);
  }
}

function immediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits (in event-loop turns, not fixed sleeps) until `predicate` holds. */
async function until(what: string, predicate: () => boolean, timeoutMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await immediate();
  }
}

/** Lets every pending callback run, so that "nothing more happened" can be asserted. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await immediate();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function slice(name: string, addresses: string[], resourceVersion = '1'): SliceLike {
  return {
    metadata: { name, resourceVersion },
    addressType: 'IPv4',
    endpoints: addresses.map((address) => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
    })),
    ports: [{ name: 'grpc', port: 8080, protocol: 'TCP' }],
  };
}

function list(resourceVersion: string, ...items: SliceLike[]): ListAnswer {
  return { items, resourceVersion };
}

const FORBIDDEN_TEXT =
  'endpointslices.discovery.k8s.io is forbidden: User "u" cannot list resource "endpointslices" in API group "discovery.k8s.io" in the namespace "default"';

function forbiddenEndpoints(): { code: number; body: string } {
  return {
    code: 403,
    body: JSON.stringify({
      kind: 'Status',
      code: 403,
      message:
        'endpoints is forbidden: User "u" cannot list resource "endpoints" in API group "" in the namespace "default"',
    }),
  };
}

function forbidden(): { code: number; body: string } {
  return {
    code: 403,
    body: JSON.stringify({ kind: 'Status', code: 403, message: FORBIDDEN_TEXT }),
  };
}

interface Harness {
  api: FakeK8sApi;
  resolver: K8sEndpointResolver;
  sink: RecordingSink;
  apiOptions: K8sConnectionOptions[];
}

function setup(
  target: string,
  api: FakeK8sApi,
  connection: K8sConnectionOptions = {},
  source?: K8sEndpointSource,
): Harness {
  const apiOptions: K8sConnectionOptions[] = [];
  const resolver = new K8sEndpointResolver(
    parseK8sTarget(parseTargetUri(target), target),
    connection,
    (options) => {
      apiOptions.push(options);
      return Promise.resolve(api);
    },
    source,
  );
  return { api, resolver, sink: new RecordingSink(), apiOptions };
}

/** Starts and waits for the first list and watch. */
async function started(target: string, api: FakeK8sApi): Promise<Harness> {
  const h = setup(target, api);
  h.resolver.start(h.sink);
  await until('the first watch', () => h.resolver.state().phase === 'watching');
  return h;
}

describe('K8sEndpointResolver: list then watch', () => {
  test('the first list gives one update with every slice merged; the watch starts from its version', async () => {
    const api = new FakeK8sApi([
      list('100', slice('hello-a', ['10.0.0.2', '10.0.0.1']), slice('hello-b', ['10.0.0.3'])),
    ]);
    const h = setup('k8s:///hello:grpc', api, { requestTimeoutMs: 1234 });
    h.resolver.start(h.sink);
    assert.equal(h.resolver.state().phase, 'listing');
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.sink.events, [
      {
        update: {
          endpoints: [
            { host: '10.0.0.1', port: 8080 },
            { host: '10.0.0.2', port: 8080 },
            { host: '10.0.0.3', port: 8080 },
          ],
          note: '3 ready endpoints from 2 EndpointSlices of Service default/hello',
        },
      },
    ]);
    assert.deepEqual(h.apiOptions, [{ requestTimeoutMs: 1234 }]);
    assert.deepEqual(api.listCalls, ['default/hello']);
    // A port name needs no Service.
    assert.deepEqual(api.serviceCalls, []);
    assert.equal(api.watches.length, 1);
    const watch = api.lastWatch;
    assert.deepEqual(
      [watch.namespace, watch.service, watch.resourceVersion],
      ['default', 'hello', '100'],
    );
    assert.deepEqual(h.resolver.state(), {
      phase: 'watching',
      resourceVersion: '100',
      source: 'endpointslices',
      slices: 2,
      lists: 1,
      watches: 1,
    });
    h.resolver.stop();
  });

  test("the target's namespace is listed and watched, not the default one", async () => {
    const api = new FakeK8sApi([list('7', slice('s', ['10.0.0.1']))], {
      defaultNamespace: 'elsewhere',
    });
    const h = await started('k8s://prod/hello:grpc', api);
    assert.deepEqual(api.listCalls, ['prod/hello']);
    assert.equal(api.lastWatch.namespace, 'prod');
    assert.equal(
      h.sink.updates[0]?.note,
      '1 ready endpoint from 1 EndpointSlice of Service prod/hello',
    );
    h.resolver.stop();
  });

  test('ADDED, MODIFIED and DELETED change the set, one update each', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']), slice('b', ['10.0.0.2']))]);
    const h = await started('k8s:///hello:grpc', api);
    const watch = api.lastWatch;

    watch.emit('ADDED', slice('c', ['10.0.0.3'], '101'));
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    watch.emit('MODIFIED', slice('a', ['10.0.0.4', '10.0.0.5'], '102'));
    assert.deepEqual(h.sink.lastHosts(), [
      '10.0.0.2:8080',
      '10.0.0.3:8080',
      '10.0.0.4:8080',
      '10.0.0.5:8080',
    ]);
    watch.emit('DELETED', slice('b', ['10.0.0.2'], '103'));
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.3:8080', '10.0.0.4:8080', '10.0.0.5:8080']);
    assert.equal(
      h.sink.updates.at(-1)?.note,
      '3 ready endpoints from 2 EndpointSlices of Service default/hello',
    );
    assert.equal(h.sink.updates.length, 4);
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.resolver.state(), {
      phase: 'watching',
      resourceVersion: '103',
      source: 'endpointslices',
      slices: 2,
      lists: 1,
      watches: 1,
    });
    // The last slice deleted: an honest empty set.
    watch.emit('DELETED', slice('a', [], '104'));
    watch.emit('DELETED', slice('c', [], '105'));
    assert.deepEqual(h.sink.updates.at(-1), {
      endpoints: [],
      note: '0 ready endpoints from 0 EndpointSlices of Service default/hello',
    });
    h.resolver.stop();
  });

  test('an event carrying a slice without a name is ignored (only its version is kept)', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    api.lastWatch.emit('ADDED', { metadata: { resourceVersion: '120' }, addressType: 'IPv4' });
    await settle();
    assert.equal(h.sink.events.length, 1);
    assert.equal(h.resolver.state().resourceVersion, '120');
    assert.equal(h.resolver.state().slices, 1);
    h.resolver.stop();
  });

  test('warnings about skipped slices reach the sink, prefixed with the Service', async () => {
    const fqdn: SliceLike = { ...slice('names', ['10.0.0.9']), addressType: 'FQDN' };
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']), fqdn)]);
    const h = await started('k8s:///hello:grpc', api);
    assert.deepEqual(h.sink.events[0], {
      warn: 'k8s default/hello: EndpointSlice names: addressType FQDN is not IPv4 or IPv6; skipped',
    });
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    h.resolver.stop();
  });

  test('BOOKMARK only moves the resourceVersion: no update', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    api.lastWatch.emit('BOOKMARK', {
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: { resourceVersion: '150' },
    });
    await settle();
    assert.equal(h.sink.events.length, 1);
    assert.equal(h.resolver.state().resourceVersion, '150');
    assert.equal(h.resolver.state().slices, 1);
    // Even a bookmark that carries a name does not touch the set.
    api.lastWatch.emit('BOOKMARK', { metadata: { name: 'a', resourceVersion: '160' } });
    api.lastWatch.emit('BOOKMARK', { metadata: { name: 'z', resourceVersion: '170' } });
    await settle();
    assert.equal(h.sink.events.length, 1);
    assert.equal(h.resolver.state().resourceVersion, '170');
    assert.equal(h.resolver.state().slices, 1);
    // The next watch starts from the bookmark.
    api.lastWatch.end(null);
    await until('a second watch', () => api.watches.length === 2);
    assert.equal(api.lastWatch.resourceVersion, '170');
    assert.equal(h.sink.events.length, 1);
    h.resolver.stop();
  });

  test('a watch the server closes is reopened from the last resourceVersion, without a list', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    api.lastWatch.emit('MODIFIED', slice('a', ['10.0.0.2'], '105'));
    const first = api.lastWatch;
    first.end(null);
    await until('a second watch', () => api.watches.length === 2);
    assert.equal(api.lastWatch.resourceVersion, '105');
    assert.deepEqual(api.listCalls, ['default/hello']);
    assert.equal(h.sink.updates.length, 2);
    assert.deepEqual(h.sink.errors, []);
    await until('watching', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.resolver.state(), {
      phase: 'watching',
      resourceVersion: '105',
      source: 'endpointslices',
      slices: 1,
      lists: 1,
      watches: 2,
    });
    // The closed watch's late events are ignored; the new one's are not.
    first.emit('ADDED', slice('x', ['10.0.0.99'], '106'));
    assert.equal(h.sink.updates.length, 2);
    api.lastWatch.emit('ADDED', slice('b', ['10.0.0.3'], '107'));
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.2:8080', '10.0.0.3:8080']);
    h.resolver.stop();
  });
});

describe('K8sEndpointResolver: 410 Gone re-lists', () => {
  const cases: [string, (watch: FakeWatch) => void][] = [
    [
      'an ERROR event with code 410',
      (watch) =>
        watch.emit('ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: 'too old resource version: 100 (250)',
          reason: 'Expired',
          code: 410,
        }),
    ],
    [
      'a watch ended with statusCode 410',
      (watch) => watch.end(Object.assign(new Error('Gone'), { statusCode: 410 })),
    ],
  ];
  for (const [name, gone] of cases) {
    test(`${name}: a second list, then a watch from its version`, async () => {
      const api = new FakeK8sApi([
        list('100', slice('a', ['10.0.0.1'])),
        list('250', slice('a', ['10.0.0.1']), slice('b', ['10.0.0.2'])),
      ]);
      const h = await started('k8s:///hello:grpc', api);
      const first = api.lastWatch;
      gone(first);
      await until('the second watch', () => api.watches.length === 2);
      assert.equal(first.aborted || first.ended, true);
      assert.deepEqual(api.listCalls, ['default/hello', 'default/hello']);
      assert.equal(api.lastWatch.resourceVersion, '250');
      assert.deepEqual(h.sink.errors, []);
      assert.equal(h.sink.updates.length, 2);
      assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080', '10.0.0.2:8080']);
      await until('watching', () => h.resolver.state().phase === 'watching');
      assert.deepEqual(h.resolver.state(), {
        phase: 'watching',
        resourceVersion: '250',
        source: 'endpointslices',
        slices: 2,
        lists: 2,
        watches: 2,
      });
      await settle();
      assert.equal(api.watches.length, 2);
      h.resolver.stop();
    });
  }

  test('a list dropped during the re-list disappears (the set is replaced, not merged)', async () => {
    const api = new FakeK8sApi([
      list('100', slice('a', ['10.0.0.1']), slice('b', ['10.0.0.2'])),
      list('300', slice('b', ['10.0.0.2'])),
    ]);
    const h = await started('k8s:///hello:grpc', api);
    api.lastWatch.emit('ERROR', { kind: 'Status', code: 410, message: 'Gone' });
    await until('the second watch', () => api.watches.length === 2);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.2:8080']);
    assert.equal(h.resolver.state().slices, 1);
    h.resolver.stop();
  });
});

describe('K8sEndpointResolver: watches that keep ending at once', () => {
  test('three watches ending within 1 s: a pause, then a re-list', async () => {
    const api = new FakeK8sApi([
      list('100', slice('a', ['10.0.0.1'])),
      list('200', slice('a', ['10.0.0.1'])),
    ]);
    // The first three watches end as soon as they are open; the fourth stays.
    api.afterOpen = (watch) => {
      if (api.watches.length <= 3) watch.end(null);
    };
    const h = setup('k8s:///hello:grpc', api);
    const startedAt = Date.now();
    h.resolver.start(h.sink);
    await until('the third watch to end', () => api.watches.length === 3 && api.lastWatch.ended);
    await settle();
    // Paused: no fourth watch, no list yet.
    assert.equal(h.resolver.state().phase, 'broken');
    assert.deepEqual(api.listCalls, ['default/hello']);
    await sleep(50);
    assert.equal(api.watches.length, 3);
    assert.equal(api.listCalls.length, 1);
    assert.deepEqual(
      api.watches.map((w) => w.resourceVersion),
      ['100', '100', '100'],
    );
    await until('the re-list and the fourth watch', () => api.watches.length === 4, 1_600);
    const pausedMs = Date.now() - startedAt;
    // The first pause is 1 s ±20%.
    assert.ok(pausedMs >= 750, `re-listed after ${pausedMs} ms`);
    assert.equal(api.listCalls.length, 2);
    assert.equal(api.lastWatch.resourceVersion, '200');
    await until('watching', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.sink.errors, []);
    h.resolver.stop();
  });

  test('an event between short watches resets the count: no pause', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    for (let i = 0; i < 4; i++) {
      if (i === 2) api.lastWatch.emit('MODIFIED', slice('a', ['10.0.0.2'], '101'));
      api.lastWatch.end(null);
      await until(`watch ${i + 2}`, () => api.watches.length === i + 2);
    }
    await until('watching', () => h.resolver.state().phase === 'watching');
    assert.equal(api.listCalls.length, 1);
    assert.equal(api.watches.length, 5);
    h.resolver.stop();
  });

  test('with mocked timers: a watch silent for 60 s (no event, bookmark or end) is replaced by a re-list; any event resets the clock', async () => {
    // A dead connection must be noticed within about a minute (client-go: ~45 s), not 5 minutes.
    assert.ok(WATCH_IDLE_TIMEOUT_MS <= 60_000, `idle timeout ${WATCH_IDLE_TIMEOUT_MS} ms`);
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1'])), list('200')]);
      const h = setup('k8s:///hello:grpc', api);
      h.resolver.start(h.sink);
      await until('watching', () => h.resolver.state().phase === 'watching');
      mock.timers.tick(WATCH_IDLE_TIMEOUT_MS - 1);
      await settle();
      // A bookmark is a sign of life: the clock starts again.
      api.lastWatch.emit('BOOKMARK', { metadata: { resourceVersion: '150' } });
      mock.timers.tick(WATCH_IDLE_TIMEOUT_MS - 1);
      await settle();
      assert.equal(api.listCalls.length, 1);
      assert.equal(api.watches.length, 1);
      mock.timers.tick(1);
      await until('the re-list', () => api.listCalls.length === 2);
      await until('a new watch', () => api.watches.length === 2);
      assert.equal(api.watches[0]!.aborted, true, 'the silent watch is aborted');
      assert.deepEqual(h.sink.warnings, [
        `k8s default/hello: no watch event, bookmark or end for 60 s from ${SERVER}: the connection is presumed dead; re-listing`,
      ]);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('with mocked timers: the first pause is 1 s ±20%, and stop() during a pause cancels the re-list', async () => {
    // Only setTimeout is mocked: Date stays real, so every watch still counts as short.
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      api.afterOpen = (watch) => watch.end(null);
      const h = setup('k8s:///hello:grpc', api);
      h.resolver.start(h.sink);
      await until('three watches', () => api.watches.length === 3 && api.lastWatch.ended);
      await settle();
      mock.timers.tick(799);
      await settle();
      assert.equal(api.listCalls.length, 1);
      mock.timers.tick(401);
      await until('the re-list', () => api.listCalls.length === 2);
      // Its watches end at once too: three more, then another pause, stopped this time.
      await until('six watches', () => api.watches.length === 6 && api.lastWatch.ended);
      await settle();
      assert.equal(h.resolver.state().phase, 'broken');
      h.resolver.stop();
      mock.timers.tick(60_000);
      await settle();
      assert.equal(api.listCalls.length, 2);
      assert.equal(api.watches.length, 6);
      assert.equal(h.sink.updates.length, 2);
      assert.deepEqual(h.sink.errors, []);
      // Said once, not at every pause.
      assert.equal(h.sink.warnings.length, 1);
      assert.match(h.sink.warnings[0]!, /keep ending as soon as they open/);
    } finally {
      mock.timers.reset();
    }
  });
});

describe('K8sEndpointResolver: errors', () => {
  test('a list refused with 403 is a K8sResolutionError quoting the server and naming the grant', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.events.length > 0);
    await settle();
    assert.equal(h.sink.events.length, 1);
    const error = h.sink.errors[0];
    assert.ok(error instanceof K8sResolutionError, String(error));
    assert.equal(error.status, 403);
    assert.equal(error.service, 'default/hello');
    assert.equal(error.code, 'RESOLUTION_FAILED');
    assert.equal(
      error.message,
      `listing EndpointSlices of Service default/hello at ${SERVER}: 403 Forbidden: ${FORBIDDEN_TEXT}. ` +
        'Grant this identity list and watch on endpointslices (apiGroup discovery.k8s.io) ' +
        'in namespace default (a Role and a RoleBinding); listing its core/v1 Endpoints instead was refused too',
    );
    assert.match(error.message, /403 Forbidden/);
    assert.match(error.message, /Grant this identity list and watch/);
    assert.ok(error.message.includes('User "u" cannot list'));
    assert.deepEqual(error.cause, forbidden());
    assert.equal(api.watches.length, 0);
    assert.equal(h.resolver.state().phase, 'broken');
    h.resolver.stop();
  });

  test('with a numeric port the 403 also asks for get on services', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }], { service: { spec: { ports: [] } } });
    const h = setup('k8s:///hello.prod:80', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.match(
      h.sink.errors[0]!.message,
      /\(apiGroup discovery\.k8s\.io\) and get on services in namespace prod /,
    );
    h.resolver.stop();
  });

  test('a 401 says the credentials were refused', async () => {
    const api = new FakeK8sApi([
      { error: { code: 401, body: JSON.stringify({ message: 'Unauthorized' }) } },
    ]);
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    const error = h.sink.errors[0];
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, 401);
    assert.equal(
      error.message,
      `listing EndpointSlices of Service default/hello at ${SERVER}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`,
    );
    h.resolver.stop();
  });

  test('an unreachable server (no status) reports the cause', async () => {
    const api = new FakeK8sApi([{ error: new Error('connect ECONNREFUSED 127.0.0.1:6443') }]);
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    const error = h.sink.errors[0];
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, undefined);
    assert.equal(
      error.message,
      `listing EndpointSlices of Service default/hello at ${SERVER}: connect ECONNREFUSED 127.0.0.1:6443`,
    );
    h.resolver.stop();
  });

  test('no API configuration: the ConfigError is passed on, and the next refresh tries again', async () => {
    const api = new FakeK8sApi([list('1', slice('a', ['10.0.0.1']))]);
    let attempts = 0;
    const configError = new Error('no Kubernetes API server configured');
    const resolver = new K8sEndpointResolver(
      parseK8sTarget(parseTargetUri('k8s:///hello:grpc'), 'k8s:///hello:grpc'),
      {},
      () => (++attempts === 1 ? Promise.reject(configError) : Promise.resolve(api)),
    );
    const sink = new RecordingSink();
    resolver.start(sink);
    await until('an error', () => sink.errors.length > 0);
    assert.equal(sink.errors[0], configError);
    resolver.refresh();
    await until('the watch', () => resolver.state().phase === 'watching');
    assert.equal(attempts, 2);
    assert.deepEqual(sink.lastHosts(), ['10.0.0.1:8080']);
    resolver.stop();
  });

  test('after an error refresh() re-lists; while watching (or listing) it does nothing', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }, list('500', slice('a', ['10.0.0.1']))]);
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.equal(api.listCalls.length, 1);
    h.resolver.refresh();
    assert.equal(h.resolver.state().phase, 'listing');
    h.resolver.refresh(); // a second refresh while listing: no second list
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.equal(api.listCalls.length, 2);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.equal(api.lastWatch.resourceVersion, '500');
    h.resolver.refresh();
    await settle();
    assert.equal(api.listCalls.length, 2);
    assert.equal(api.watches.length, 1);
    assert.equal(api.lastWatch.aborted, false);
    assert.equal(h.sink.updates.length, 1);
    assert.equal(h.resolver.state().lists, 2);
    h.resolver.stop();
  });

  test('an ERROR event other than 410 is a warning (the listed endpoints stay); the resolver re-lists after its backoff, not at refresh()', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([
        list('100', slice('a', ['10.0.0.1'])),
        list('200', slice('a', ['10.0.0.2'])),
      ]);
      const h = await started('k8s:///hello:grpc', api);
      api.lastWatch.emit('ERROR', { kind: 'Status', code: 500, message: 'etcd leader changed' });
      await settle();
      assert.equal(api.watches[0]!.aborted, true);
      assert.deepEqual(h.sink.errors, []);
      assert.deepEqual(h.sink.warnings, [
        `k8s: watching EndpointSlices of Service default/hello at ${SERVER}: 500: etcd leader changed; ` +
          'keeping the endpoints listed and listing again with backoff (up to 30 s) until a watch holds',
      ]);
      assert.equal(h.resolver.state().phase, 'broken');
      // The channel's refresh does not cut the backoff short.
      h.resolver.refresh();
      await settle();
      assert.equal(api.listCalls.length, 1);
      mock.timers.tick(1_200);
      await until('the second watch', () => h.resolver.state().phase === 'watching');
      assert.equal(api.listCalls.length, 2);
      assert.equal(api.lastWatch.resourceVersion, '200');
      assert.deepEqual(h.sink.lastHosts(), ['10.0.0.2:8080']);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('a watch ended with an error (not 410) is a warning naming the grant; retried after the backoff', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      const h = await started('k8s:///hello:grpc', api);
      api.lastWatch.end(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
      await settle();
      assert.deepEqual(h.sink.errors, []);
      assert.equal(h.sink.warnings.length, 1);
      assert.match(
        h.sink.warnings[0]!,
        /^k8s: watching EndpointSlices of Service default\/hello at .*: 403 Forbidden: Forbidden\. Grant this identity list and watch/,
      );
      assert.equal(api.watches.length, 1);
      assert.equal(h.resolver.state().phase, 'broken');
      mock.timers.tick(1_200);
      await until('a second watch', () => api.watches.length === 2);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });
});

describe('K8sEndpointResolver: stop and restart', () => {
  test('stop() aborts the watch; nothing reaches the sink afterwards', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    const watch = api.lastWatch;
    h.resolver.stop();
    assert.equal(watch.aborted, true);
    assert.deepEqual(h.resolver.state(), {
      phase: 'idle',
      resourceVersion: undefined,
      source: undefined,
      slices: 0,
      lists: 1,
      watches: 1,
    });
    watch.emit('ADDED', slice('b', ['10.0.0.2'], '101'));
    watch.emit('ERROR', { kind: 'Status', code: 410, message: 'Gone' });
    watch.emit('ERROR', { kind: 'Status', code: 500, message: 'boom' });
    watch.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
    h.resolver.refresh();
    await settle();
    assert.equal(h.sink.events.length, 1);
    assert.equal(api.listCalls.length, 1);
    assert.equal(api.watches.length, 1);
  });

  test('stop() while the list is in flight: no update and no watch', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    let release!: () => void;
    api.listGate = new Promise((resolve) => (release = resolve));
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the list', () => api.listCalls.length === 1);
    h.resolver.stop();
    release();
    await settle();
    assert.deepEqual(h.sink.events, []);
    assert.equal(api.watches.length, 0);
  });

  test('stop() while a failing list is in flight: no error', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    let release!: () => void;
    api.listGate = new Promise((resolve) => (release = resolve));
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the list', () => api.listCalls.length === 1);
    h.resolver.stop();
    release();
    await settle();
    assert.deepEqual(h.sink.events, []);
  });

  test('start() after stop() lists and watches again, reporting only to the new sink', async () => {
    const api = new FakeK8sApi([
      list('100', slice('a', ['10.0.0.1'])),
      list('200', slice('a', ['10.0.0.2'])),
    ]);
    const h = await started('k8s:///hello:grpc', api);
    const first = api.lastWatch;
    h.resolver.stop();
    const second = new RecordingSink();
    h.resolver.start(second);
    await until('the second watch', () => h.resolver.state().phase === 'watching');
    assert.equal(api.watches.length, 2);
    assert.equal(api.lastWatch.resourceVersion, '200');
    assert.deepEqual(second.lastHosts(), ['10.0.0.2:8080']);
    assert.deepEqual(h.resolver.state(), {
      phase: 'watching',
      resourceVersion: '200',
      source: 'endpointslices',
      slices: 1,
      lists: 1,
      watches: 1,
    });
    // The API client is made once.
    assert.equal(h.apiOptions.length, 1);
    first.emit('ADDED', slice('old', ['10.0.0.9'], '150'));
    api.lastWatch.emit('ADDED', slice('b', ['10.0.0.3'], '201'));
    assert.equal(h.sink.events.length, 1);
    assert.deepEqual(second.lastHosts(), ['10.0.0.2:8080', '10.0.0.3:8080']);
    h.resolver.stop();
  });

  test('start() without stop() restarts cleanly (the old watch is aborted)', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    const first = api.lastWatch;
    h.resolver.start(h.sink);
    assert.equal(first.aborted, true);
    await until(
      'the second watch',
      () => api.watches.length === 2 && h.resolver.state().phase === 'watching',
    );
    assert.equal(api.listCalls.length, 2);
    assert.equal(h.sink.updates.length, 2);
    h.resolver.stop();
  });
});

describe('K8sEndpointResolver: numeric ports and the Service', () => {
  test('a numeric port with the Service missing is an empty update saying so', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello.prod:80', api);
    assert.deepEqual(api.serviceCalls, ['prod/hello']);
    assert.deepEqual(h.sink.events, [
      { update: { endpoints: [], note: `Service prod/hello does not exist (${SERVER})` } },
    ]);
    assert.match(h.sink.updates[0]!.note!, /does not exist/);
    h.resolver.stop();
  });

  test('a numeric port is mapped through the Service port name to the pods port', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))], {
      service: { spec: { ports: [{ name: 'grpc', port: 80, protocol: 'TCP' }] } },
    });
    const h = await started('k8s:///hello.prod:80', api);
    assert.deepEqual(h.sink.events, [
      {
        update: {
          endpoints: [{ host: '10.0.0.1', port: 8080 }],
          note: '1 ready endpoint from 1 EndpointSlice of Service prod/hello',
        },
      },
    ]);
    h.resolver.stop();
  });

  test('a numeric port the Service does not have is an error (status undefined)', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))], {
      service: { spec: { ports: [{ name: 'grpc', port: 80 }] } },
    });
    const h = await started('k8s:///hello.prod:81', api);
    const error = h.sink.errors[0];
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, undefined);
    assert.equal(
      error.message,
      'Service prod/hello: the Service has no TCP port 81 (it has grpc=80)',
    );
    assert.deepEqual(h.sink.updates, []);
    h.resolver.stop();
  });

  test('no port and a Service with several ports is an error asking to name one', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))], {
      service: {
        spec: {
          ports: [
            { name: 'grpc', port: 80 },
            { name: 'metrics', port: 9090 },
          ],
        },
      },
    });
    const h = await started('kubernetes:///hello.prod', api);
    assert.equal(
      h.sink.errors[0]?.message,
      'Service prod/hello: the Service has 2 TCP ports (grpc, metrics): name one in the target',
    );
    h.resolver.stop();
  });
});

describe('describeFailure', () => {
  test('without a server (no API client) the error is passed on as is', () => {
    const cause = new Error('no kubeconfig');
    assert.equal(describeFailure(cause, 'ns/svc', undefined, 'listing', false), cause);
    const wrapped = describeFailure('text', 'ns/svc', undefined, 'listing', false);
    assert.equal(wrapped.message, 'text');
  });

  test('another status quotes the Status message from the body', () => {
    const error = describeFailure(
      { code: 404, body: { message: 'the server could not find the requested resource' } },
      'ns/svc',
      SERVER,
      'listing',
      false,
    );
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, 404);
    assert.equal(
      error.message,
      `listing EndpointSlices of Service ns/svc at ${SERVER}: 404: the server could not find the requested resource`,
    );
  });

  test('an unparsable body falls back to the error message', () => {
    const error = describeFailure(
      Object.assign(new Error('HTTP-Code: 500'), { code: 500, body: '<html>' }),
      'ns/svc',
      SERVER,
      'watching',
      false,
    );
    assert.equal(
      error.message,
      `watching EndpointSlices of Service ns/svc at ${SERVER}: 500: HTTP-Code: 500`,
    );
  });
});

/**
 * Bugs found while writing these tests (then fixed): each asserts the behaviour the resolver
 * documents.
 */
describe('K8sEndpointResolver: regressions', () => {
  test('with client-node abort semantics (done(AbortError) after abort), a 410 re-list leaves one watch', async () => {
    const api = new FakeK8sApi([
      list('100', slice('a', ['10.0.0.1'])),
      list('250', slice('a', ['10.0.0.2'])),
    ]);
    api.doneOnAbort = true;
    const h = await started('k8s:///hello:grpc', api);
    api.lastWatch.emit('ERROR', { kind: 'Status', code: 410, message: 'Gone' });
    await until('the re-list', () => api.listCalls.length === 2);
    await until('watching', () => h.resolver.state().phase === 'watching');
    await settle();
    // Expected: the old watch aborted and one new watch from the new list's version.
    assert.deepEqual(
      api.watches.map((w) => w.resourceVersion),
      ['100', '250'],
    );
    h.resolver.stop();
  });

  test('with client-node abort semantics, an ERROR event leaves no watch until the backoff ends', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      api.doneOnAbort = true;
      const h = await started('k8s:///hello:grpc', api);
      api.lastWatch.emit('ERROR', { kind: 'Status', code: 500, message: 'boom' });
      await settle();
      assert.equal(h.sink.warnings.length, 1);
      assert.deepEqual(h.sink.errors, []);
      assert.equal(h.resolver.state().phase, 'broken');
      assert.equal(api.watches.length, 1);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('a watch that answers 410 before watchSlices resolves (client-node on a non-200) re-lists', async () => {
    const api = new FakeK8sApi([
      list('100', slice('a', ['10.0.0.1'])),
      list('250', slice('a', ['10.0.0.2'])),
    ]);
    api.beforeOpen = (watch) => {
      if (api.watches.length === 1)
        watch.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
    };
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the re-list and its watch', () => api.watches.length === 2, 100);
    assert.equal(api.listCalls.length, 2);
    assert.equal(api.lastWatch.resourceVersion, '250');
    h.resolver.stop();
  });

  test('a Service created after the first list is found (numeric port)', async () => {
    const api = new FakeK8sApi([list('100')]);
    const h = await started('k8s:///hello.prod:80', api);
    assert.match(h.sink.updates[0]!.note!, /does not exist/);
    api.service = { spec: { ports: [{ name: 'grpc', port: 80 }] } };
    api.lastWatch.emit('ADDED', slice('a', ['10.0.0.1'], '101'));
    await until('an update with the endpoint', () => h.sink.updates.length >= 2, 200);
    await settle();
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    h.resolver.stop();
  });
});

/**
 * Emulates core's adapter for the loop tests: after an error it asks `refresh()` again 1 s later
 * (its backoff is reset by every update, and a good list is an update).
 */
class AdapterLikeSink extends RecordingSink {
  resolver: K8sEndpointResolver | undefined;
  override error(error: Error): void {
    super.error(error);
    setTimeout(() => this.resolver?.refresh(), 1_000);
  }
}

function forbiddenWatch(): Error {
  return Object.assign(new Error('Forbidden'), { statusCode: 403 });
}

describe('K8sEndpointResolver: a watch that keeps failing after a good list', () => {
  test('with mocked time: RBAC allows list but not watch: re-lists back off 1 s → 30 s (jittered), one warning, no error', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      const listedAt: number[] = [];
      const listSlices = api.listSlices.bind(api);
      api.listSlices = (namespace, service, signal) => {
        listedAt.push(Date.now());
        return listSlices(namespace, service, signal);
      };
      api.beforeOpen = (watch) => watch.end(forbiddenWatch());
      const h = setup('k8s:///hello:grpc', api);
      const sink = new AdapterLikeSink();
      sink.resolver = h.resolver;
      h.resolver.start(sink);
      await settle();
      // Ten minutes of mocked time, with the channel asking for a refresh every second too.
      for (let ms = 0; ms < 600_000; ms += 100) {
        mock.timers.tick(100);
        if (ms % 1_000 === 0) h.resolver.refresh();
        for (let i = 0; i < 4; i++) await immediate();
      }
      const gaps = listedAt.slice(1).map((t, i) => t - listedAt[i]!);
      assert.ok(gaps.length >= 15 && gaps.length <= 30, `${listedAt.length} lists in 10 min`);
      assert.ok(gaps[0]! >= 800 && gaps[0]! <= 1_300, `first retry after ${gaps[0]} ms`);
      for (const gap of gaps)
        assert.ok(gap <= 36_100, `a retry after ${gap} ms: capped at 30 s +20%`);
      // Growing: the last retries are near the cap.
      assert.ok(
        gaps.slice(-5).every((gap) => gap >= 23_900),
        gaps.join(','),
      );
      assert.deepEqual(sink.errors, []);
      assert.equal(sink.warnings.length, 1, sink.warnings.join('\n'));
      assert.match(
        sink.warnings[0]!,
        /403 Forbidden: Forbidden\. Grant this identity list and watch/,
      );
      assert.deepEqual(sink.lastHosts(), ['10.0.0.1:8080']);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('with mocked time: a watch that holds 30 s resets the backoff and says the trouble is over', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      let refuse = true;
      api.beforeOpen = (watch) => {
        if (refuse) watch.end(forbiddenWatch());
      };
      const h = setup('k8s:///hello:grpc', api);
      h.resolver.start(h.sink);
      await settle();
      // Five refusals: the next retry is several seconds away.
      for (let ms = 0; api.watches.length < 5; ms += 100) {
        assert.ok(ms < 120_000, 'five watches');
        mock.timers.tick(100);
        await settle();
      }
      refuse = false;
      for (let ms = 0; h.resolver.state().phase !== 'watching'; ms += 100) {
        assert.ok(ms < 60_000, 'a watch that opens');
        mock.timers.tick(100);
        await settle();
      }
      mock.timers.tick(29_999);
      await settle();
      assert.equal(h.sink.warnings.length, 1);
      mock.timers.tick(1);
      await settle();
      assert.deepEqual(h.sink.warnings.slice(1), [
        `k8s default/hello: watching EndpointSlices at ${SERVER} works again`,
      ]);
      // Failing again starts from the first step (1 s), and warns again.
      refuse = true;
      const lists = api.listCalls.length;
      api.lastWatch.end(forbiddenWatch());
      await settle();
      assert.equal(h.sink.warnings.length, 3);
      mock.timers.tick(1_200);
      await until('the re-list', () => api.listCalls.length === lists + 1);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('the warning about a skipped slice is emitted once, not again on every event', async () => {
    const fqdn: SliceLike = { ...slice('names', ['10.0.0.9']), addressType: 'FQDN' };
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']), fqdn)]);
    const h = await started('k8s:///hello:grpc', api);
    for (let i = 0; i < 3; i++) {
      api.lastWatch.emit('MODIFIED', slice('a', ['10.0.0.1', `10.0.1.${i}`], `${101 + i}`));
    }
    assert.equal(h.sink.updates.length, 4);
    assert.equal(h.sink.warnings.length, 1);
    // Gone, then back: said again.
    api.lastWatch.emit('DELETED', { ...fqdn, metadata: { name: 'names', resourceVersion: '110' } });
    api.lastWatch.emit('ADDED', { ...fqdn, metadata: { name: 'names', resourceVersion: '111' } });
    assert.equal(h.sink.warnings.length, 2);
    h.resolver.stop();
  });
});

describe('K8sEndpointResolver: requests in flight', () => {
  test('stop() aborts a list in flight (its signal fires)', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.listGate = new Promise(() => undefined);
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the list', () => api.listCalls.length === 1);
    const signal = api.signals[0];
    assert.ok(signal, 'the list was given an AbortSignal');
    assert.equal(signal.aborted, false);
    h.resolver.stop();
    assert.equal(signal.aborted, true);
  });

  test('stop() aborts a read of the Service in flight, and a watch still opening', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))], {
      service: { spec: { ports: [{ name: 'grpc', port: 80 }] } },
    });
    api.serviceGate = new Promise(() => undefined);
    const h = setup('k8s:///hello.prod:80', api);
    h.resolver.start(h.sink);
    await until('the read', () => api.serviceCalls.length === 1);
    assert.equal(api.signals.length, 2);
    h.resolver.stop();
    assert.ok(api.signals.every((s) => s?.aborted === true));
    // A restart gets fresh signals.
    api.serviceGate = undefined;
    h.resolver.start(h.sink);
    await until('watching', () => h.resolver.state().phase === 'watching');
    assert.ok(api.signals.slice(2).every((s) => s?.aborted === false));
    h.resolver.stop();
    assert.ok(api.signals.every((s) => s?.aborted === true));
  });
});

function forbiddenService(): Error {
  return Object.assign(new Error('HTTP-Code: 403'), {
    code: 403,
    body: JSON.stringify({
      code: 403,
      message:
        'services "hello" is forbidden: User "u" cannot get resource "services" in API group "" in the namespace "prod"',
    }),
  });
}

describe('K8sEndpointResolver: get on services refused (403)', () => {
  test('a numeric port equal to a slice port is used from the slices alone, with one warning naming the permission', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.serviceError = forbiddenService();
    const h = await started('k8s:///hello.prod:8080', api);
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.equal(h.sink.warnings.length, 1);
    assert.equal(
      h.sink.warnings[0],
      `k8s prod/hello: reading Service prod/hello at ${SERVER}: 403 Forbidden: services "hello" is forbidden: ` +
        `User "u" cannot get resource "services" in API group "" in the namespace "prod"; port 8080 is matched ` +
        `against the pods' port numbers in the EndpointSlices instead. Grant this identity get on services in ` +
        `namespace prod to map Service ports to the pods' ports`,
    );
    // Events and reopened watches (which read the Service again) do not repeat it.
    api.lastWatch.emit('ADDED', slice('b', ['10.0.0.2'], '101'));
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080', '10.0.0.2:8080']);
    api.lastWatch.end(null);
    await until('a second watch', () => api.watches.length === 2);
    await until('watching', () => h.resolver.state().phase === 'watching');
    assert.equal(api.serviceCalls.length, 2);
    assert.equal(h.sink.warnings.length, 1);
    assert.deepEqual(h.sink.errors, []);
    // Granted later: the Service maps the port again, and that is said.
    api.serviceError = undefined;
    api.service = { spec: { ports: [{ name: 'grpc', port: 8080 }] } };
    api.lastWatch.end(null);
    await until('a third watch', () => api.watches.length === 3);
    assert.equal(
      h.sink.warnings[1],
      'k8s prod/hello: reading Service prod/hello is allowed again; ports are mapped through it',
    );
    h.resolver.stop();
  });

  test("a port-less target uses the slices' only TCP port", async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.serviceError = forbiddenService();
    const h = await started('kubernetes:///hello.prod', api);
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.match(h.sink.warnings[0]!, /each EndpointSlice's only TCP port is used instead/);
    h.resolver.stop();
  });

  test('a numeric port no slice has: no endpoints, a warning per slice, not an error', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.serviceError = forbiddenService();
    const h = await started('k8s:///hello.prod:80', api);
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.sink.lastHosts(), []);
    assert.deepEqual(h.sink.warnings.slice(1), [
      'k8s prod/hello: EndpointSlice a: no port 80 among grpc=8080; skipped',
    ]);
    h.resolver.stop();
  });

  test('another failure to read the Service still fails the list', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.serviceError = Object.assign(new Error('boom'), { code: 500 });
    const h = setup('k8s:///hello.prod:8080', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.match(
      h.sink.errors[0]!.message,
      /^listing EndpointSlices of Service prod\/hello at .*: 500: boom$/,
    );
    h.resolver.stop();
  });
});

/** The Endpoints object the endpoints controller writes for Service `hello`. */
function endpointsObject(
  subsets: NonNullable<EndpointsLike['subsets']>,
  resourceVersion = '1',
  name = 'hello',
): EndpointsLike {
  return { metadata: { name, resourceVersion }, subsets };
}

const GRPC_PORTS = [
  { name: 'grpc', port: 8080, protocol: 'TCP' },
  { name: 'metrics', port: 9090, protocol: 'TCP' },
];

function ready(...ips: string[]): { ip: string }[] {
  return ips.map((ip) => ({ ip }));
}

function notFound(): { code: number; body: string } {
  return {
    code: 404,
    body: JSON.stringify({
      kind: 'Status',
      code: 404,
      message: 'the server could not find the requested resource',
    }),
  };
}

describe('K8sEndpointResolver: core/v1 Endpoints', () => {
  test("source 'endpoints': only the Endpoints are listed and watched; ready addresses on the named port, not-ready ones excluded", async () => {
    const api = new FakeK8sApi([list('1', slice('never', ['10.9.9.9']))]);
    api.endpointsAnswers = [
      {
        items: [
          endpointsObject([
            {
              addresses: [
                { ip: '10.0.0.2', nodeName: 'node-1', targetRef: { kind: 'Pod', name: 'hello-2' } },
                { ip: '10.0.0.1' },
              ],
              notReadyAddresses: ready('10.0.0.3'),
              ports: GRPC_PORTS,
            },
          ]),
        ],
        resourceVersion: '300',
      },
    ];
    const h = setup('k8s:///hello.prod:grpc', api, {}, 'endpoints');
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(api.listCalls, []);
    assert.deepEqual(api.endpointsCalls, ['prod/hello']);
    assert.deepEqual(h.sink.events, [
      {
        update: {
          endpoints: [
            { host: '10.0.0.1', port: 8080 },
            { host: '10.0.0.2', port: 8080, labels: { node: 'node-1', pod: 'hello-2' } },
          ],
          note: '2 ready endpoints from 1 Endpoints subset of Service prod/hello',
        },
      },
    ]);
    const watch = api.lastWatch;
    assert.deepEqual(
      [watch.kind, watch.namespace, watch.service, watch.resourceVersion],
      ['endpoints', 'prod', 'hello', '300'],
    );
    assert.deepEqual(h.resolver.state(), {
      phase: 'watching',
      resourceVersion: '300',
      source: 'endpoints',
      slices: 1,
      lists: 1,
      watches: 1,
    });
    h.resolver.stop();
  });

  test('watch events: MODIFIED replaces the whole object (every subset), DELETED empties, BOOKMARK moves the version, 410 re-lists the Endpoints', async () => {
    const api = new FakeK8sApi([list('1')]);
    api.endpointsAnswers = [
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.1'), ports: GRPC_PORTS }])],
        resourceVersion: '10',
      },
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.7'), ports: GRPC_PORTS }], '20')],
        resourceVersion: '20',
      },
    ];
    const h = setup('k8s:///hello:grpc', api, {}, 'endpoints');
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    const watch = api.lastWatch;
    watch.emit(
      'MODIFIED',
      endpointsObject(
        [
          { addresses: ready('10.0.0.1', '10.0.0.2'), ports: GRPC_PORTS },
          // A second subset: pods whose port numbers differ (a rollout changing containerPort).
          { addresses: ready('10.0.0.3'), ports: [{ name: 'grpc', port: 8081, protocol: 'TCP' }] },
        ],
        '11',
      ),
    );
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8081']);
    watch.emit(
      'MODIFIED',
      endpointsObject([{ addresses: ready('10.0.0.2'), ports: GRPC_PORTS }], '12'),
    );
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.2:8080']);
    // Every address not ready (a rollout's new pods still starting): no calls to any of them.
    watch.emit(
      'MODIFIED',
      endpointsObject(
        [{ notReadyAddresses: ready('10.0.0.2', '10.0.0.4'), ports: GRPC_PORTS }],
        '13',
      ),
    );
    assert.deepEqual(h.sink.lastHosts(), []);
    watch.emit('BOOKMARK', { metadata: { resourceVersion: '14' } });
    assert.equal(h.resolver.state().resourceVersion, '14');
    watch.emit('DELETED', endpointsObject([], '15'));
    assert.deepEqual(h.sink.lastHosts(), []);
    assert.equal(h.resolver.state().slices, 0);
    assert.equal(h.sink.updates.length, 5);
    watch.emit('ERROR', { code: 410, message: 'too old resource version' });
    await until('a watch from the re-list', () => api.watches.length === 2);
    assert.deepEqual(api.listCalls, []);
    assert.equal(api.endpointsCalls.length, 2);
    assert.deepEqual([api.lastWatch.kind, api.lastWatch.resourceVersion], ['endpoints', '20']);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.7:8080']);
    assert.deepEqual(h.sink.errors, []);
    h.resolver.stop();
  });

  test("source 'auto': a 404 on EndpointSlices (not served) falls back to the Endpoints, with one warning, and keeps to them", async () => {
    const api = new FakeK8sApi([{ error: notFound() }]);
    api.endpointsAnswers = [
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.1'), ports: GRPC_PORTS }])],
        resourceVersion: '50',
      },
    ];
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.sink.warnings, [
      `k8s default/hello: listing EndpointSlices at ${SERVER}: 404: the API server does not serve discovery.k8s.io/v1; following the Service's core/v1 Endpoints instead (they carry no terminating endpoints)`,
    ]);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.equal(api.lastWatch.kind, 'endpoints');
    assert.equal(h.resolver.state().source, 'endpoints');
    // A re-list (410) goes to the Endpoints directly, and does not warn again.
    api.lastWatch.emit('ERROR', { code: 410, message: 'gone' });
    await until('the second watch', () => api.watches.length === 2);
    assert.equal(api.listCalls.length, 1);
    assert.equal(api.endpointsCalls.length, 2);
    assert.equal(api.lastWatch.kind, 'endpoints');
    assert.equal(h.sink.warnings.length, 1);
    // A new start looks for EndpointSlices again.
    h.resolver.stop();
    api.listAnswers = [list('60', slice('s', ['10.0.0.5']))];
    h.resolver.start(h.sink);
    await until('a watch of slices', () => api.lastWatch.kind === 'endpointslices');
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.5:8080']);
    h.resolver.stop();
  });

  test("source 'auto': a 403 on EndpointSlices while the Endpoints are readable falls back, the warning naming the grant", async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    api.endpointsAnswers = [
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.1', '10.0.0.2'), ports: GRPC_PORTS }])],
        resourceVersion: '50',
      },
    ];
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.sink.errors, []);
    assert.deepEqual(h.sink.warnings, [
      `k8s default/hello: listing EndpointSlices at ${SERVER}: 403 Forbidden: ${FORBIDDEN_TEXT}; ` +
        "following the Service's core/v1 Endpoints instead (they carry no terminating endpoints). " +
        'Grant this identity list and watch on endpointslices (apiGroup discovery.k8s.io) in namespace default to use EndpointSlices',
    ]);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080', '10.0.0.2:8080']);
    assert.equal(api.lastWatch.kind, 'endpoints');
    h.resolver.stop();
  });

  test("source 'auto': another failure of the EndpointSlices list (500, no answer) is not a reason to fall back", async () => {
    const api = new FakeK8sApi([
      { error: { code: 500, body: JSON.stringify({ message: 'etcdserver: request timed out' }) } },
    ]);
    api.endpointsAnswers = [{ items: [], resourceVersion: '1' }];
    const h = setup('k8s:///hello:grpc', api);
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.deepEqual(api.endpointsCalls, []);
    assert.equal(
      h.sink.errors[0]!.message,
      `listing EndpointSlices of Service default/hello at ${SERVER}: 500: etcdserver: request timed out`,
    );
    h.resolver.stop();
  });

  test("source 'endpointslices': a 404 is an error and the Endpoints are never read", async () => {
    const api = new FakeK8sApi([{ error: notFound() }]);
    api.endpointsAnswers = [{ items: [], resourceVersion: '1' }];
    const h = setup('k8s:///hello:grpc', api, {}, 'endpointslices');
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.deepEqual(api.endpointsCalls, []);
    assert.match(
      h.sink.errors[0]!.message,
      /^listing EndpointSlices of Service default\/hello .*: 404: /,
    );
    h.resolver.stop();
  });

  test("source 'endpoints': a 403 names the grant on endpoints (core group), and get on services for a numeric port", async () => {
    const api = new FakeK8sApi([list('1')], { service: { spec: { ports: [] } } });
    const h = setup('k8s:///hello:80', api, {}, 'endpoints');
    h.resolver.start(h.sink);
    await until('an error', () => h.sink.errors.length > 0);
    assert.equal(
      h.sink.errors[0]!.message,
      `listing Endpoints of Service default/hello at ${SERVER}: 403 Forbidden: endpoints is forbidden: ` +
        'User "u" cannot list resource "endpoints" in API group "" in the namespace "default". ' +
        'Grant this identity list and watch on endpoints (the core apiGroup "") and get on services ' +
        'in namespace default (a Role and a RoleBinding)',
    );
    assert.deepEqual(api.listCalls, []);
    h.resolver.stop();
  });

  test('ports: a numeric Service port is mapped through its name; a port-less target takes the only TCP port; IPv6 addresses are kept', async () => {
    const service: ServiceLike = {
      spec: {
        ports: [
          { name: 'grpc', port: 80, protocol: 'TCP' },
          { name: 'metrics', port: 9090, protocol: 'TCP' },
        ],
      },
    };
    const numericApi = new FakeK8sApi([list('1')], { service });
    numericApi.endpointsAnswers = [
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.1', 'fd00::1'), ports: GRPC_PORTS }])],
        resourceVersion: '5',
      },
    ];
    const numeric = setup('k8s:///hello:80', numericApi, {}, 'endpoints');
    numeric.resolver.start(numeric.sink);
    await until('the watch', () => numeric.resolver.state().phase === 'watching');
    assert.deepEqual(numeric.sink.lastHosts(), ['10.0.0.1:8080', 'fd00::1:8080']);
    numeric.resolver.stop();

    const onlyApi = new FakeK8sApi([list('1')], {
      service: { spec: { ports: [{ port: 80, protocol: 'TCP' }] } },
    });
    onlyApi.endpointsAnswers = [
      {
        items: [
          endpointsObject([
            { addresses: ready('10.0.0.2'), ports: [{ port: 5000, protocol: 'TCP' }] },
          ]),
        ],
        resourceVersion: '5',
      },
    ];
    const only = setup('k8s:///hello', onlyApi, {}, 'endpoints');
    only.resolver.start(only.sink);
    await until('the watch', () => only.resolver.state().phase === 'watching');
    assert.deepEqual(only.sink.lastHosts(), ['10.0.0.2:5000']);
    only.resolver.stop();
  });

  test('a subset without the named port is skipped with one warning naming the Endpoints subset', async () => {
    const api = new FakeK8sApi([list('1')]);
    api.endpointsAnswers = [
      {
        items: [
          endpointsObject([
            { addresses: ready('10.0.0.1'), ports: GRPC_PORTS },
            { addresses: ready('10.0.0.2'), ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
          ]),
        ],
        resourceVersion: '5',
      },
    ];
    const h = setup('k8s:///hello:grpc', api, {}, 'endpoints');
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.deepEqual(h.sink.warnings, [
      'k8s default/hello: Endpoints subset hello[1]: no port "grpc" among http=80; skipped',
    ]);
    h.resolver.stop();
  });

  test('with mocked time: a watch of Endpoints refused (list allowed) backs off like the slices one, warning once with the Endpoints grant', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const api = new FakeK8sApi([list('1')]);
      api.endpointsAnswers = [
        {
          items: [endpointsObject([{ addresses: ready('10.0.0.1'), ports: GRPC_PORTS }])],
          resourceVersion: '5',
        },
      ];
      api.beforeOpen = (watch) => watch.end(forbiddenWatch());
      const h = setup('k8s:///hello:grpc', api, {}, 'endpoints');
      h.resolver.start(h.sink);
      await settle();
      for (let ms = 0; ms < 120_000; ms += 100) {
        mock.timers.tick(100);
        h.resolver.refresh();
        for (let i = 0; i < 4; i++) await immediate();
      }
      // 1 s, 1.6 s, 2.6 s, 4.1 s, 6.6 s, 10.5 s, 16.8 s, 26.8 s, 30 s… (±20%): well under one a second.
      assert.ok(
        api.endpointsCalls.length >= 7 && api.endpointsCalls.length <= 13,
        `${api.endpointsCalls.length} lists in 2 min`,
      );
      assert.deepEqual(h.sink.errors, []);
      assert.equal(h.sink.warnings.length, 1, h.sink.warnings.join('\n'));
      assert.match(
        h.sink.warnings[0]!,
        /^k8s: watching Endpoints of Service default\/hello .*Grant this identity list and watch on endpoints \(the core apiGroup ""\)/,
      );
      assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test("a target's ?source=endpoints overrides the option", async () => {
    const api = new FakeK8sApi([list('1', slice('s', ['10.0.0.9']))]);
    api.endpointsAnswers = [
      {
        items: [endpointsObject([{ addresses: ready('10.0.0.1'), ports: GRPC_PORTS }])],
        resourceVersion: '5',
      },
    ];
    const h = setup('k8s:///hello:grpc?source=endpoints', api, {}, 'endpointslices');
    h.resolver.start(h.sink);
    await until('the watch', () => h.resolver.state().phase === 'watching');
    assert.deepEqual(api.listCalls, []);
    assert.deepEqual(h.sink.lastHosts(), ['10.0.0.1:8080']);
    assert.equal(api.lastWatch.kind, 'endpoints');
    h.resolver.stop();
  });

  test('stop() aborts an Endpoints list in flight', async () => {
    const api = new FakeK8sApi([list('1')]);
    api.endpointsAnswers = [{ items: [], resourceVersion: '1' }];
    api.listGate = new Promise(() => undefined);
    const h = setup('k8s:///hello:grpc', api, {}, 'endpoints');
    h.resolver.start(h.sink);
    await until('the list', () => api.endpointsCalls.length === 1);
    const signal = api.signals[0];
    assert.ok(signal && !signal.aborted);
    h.resolver.stop();
    assert.equal(signal.aborted, true);
  });
});

function configMap(
  resourceVersion: string,
  data: Record<string, string> | undefined,
  binaryData?: Record<string, string>,
): ConfigMapLike {
  return {
    metadata: { name: 'hello-lb', resourceVersion },
    ...(data ? { data } : {}),
    ...(binaryData ? { binaryData } : {}),
  };
}

const DOC_A = '{"loadBalancingConfig": [{"round_robin": {}}]}';
const DOC_B = '{"loadBalancingConfig": [{"pick_first": {}}]}';

describe('K8sEndpointResolver: ?config= (the service config from a ConfigMap)', () => {
  test('the first update waits for the ConfigMap and carries its text, named with its resourceVersion', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    let release = (): void => undefined;
    api.configMapGate = new Promise((resolve) => (release = resolve));
    api.configMapAnswers = [
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello.prod:grpc?config=hello-lb', api);
    h.resolver.start(h.sink);
    await until('the slice watch', () => h.resolver.state().phase === 'watching');
    await settle();
    assert.deepEqual(h.sink.events, [], 'nothing before the document is read');
    assert.deepEqual(api.configMapCalls, ['prod/hello-lb']);
    release();
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(h.sink.updates[0], {
      endpoints: [{ host: '10.0.0.1', port: 8080 }],
      serviceConfig: DOC_A,
      serviceConfigSource: 'ConfigMap prod/hello-lb service-config.json (resourceVersion 42)',
      note: '1 ready endpoint from 1 EndpointSlice of Service prod/hello; service config from ConfigMap prod/hello-lb service-config.json (resourceVersion 42)',
    });
    await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
    const watch = api.lastConfigWatch;
    assert.deepEqual(
      [watch.namespace, watch.service, watch.resourceVersion],
      ['prod', 'hello-lb', '50'],
    );
    // Every update carries the document.
    api.lastWatch.emit('MODIFIED', slice('a', ['10.0.0.1', '10.0.0.2'], '101'));
    assert.equal(h.sink.updates.length, 2);
    assert.equal(h.sink.updates[1]?.serviceConfig, DOC_A);
    assert.equal(h.sink.updates[1]?.endpoints.length, 2);
    h.resolver.stop();
    assert.ok(watch.aborted, 'stop() ends the ConfigMap watch');
  });

  test('a write, a deletion and a re-creation are followed; absence is a note and a warning', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.configMapAnswers = [
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello:grpc?config=hello-lb', api);
    h.resolver.start(h.sink);
    await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
    const watch = api.lastConfigWatch;
    watch.emit('MODIFIED', configMap('43', { 'service-config.json': DOC_B }));
    assert.equal(h.sink.updates.at(-1)?.serviceConfig, DOC_B);
    assert.match(h.sink.updates.at(-1)?.serviceConfigSource ?? '', /resourceVersion 43\)$/);
    watch.emit('BOOKMARK', { metadata: { resourceVersion: '60' } });
    const before = h.sink.updates.length;
    watch.emit('DELETED', configMap('61', { 'service-config.json': DOC_B }));
    assert.equal(h.sink.updates.length, before + 1);
    const deleted = h.sink.updates.at(-1)!;
    assert.equal('serviceConfig' in deleted, false);
    assert.equal('serviceConfigSource' in deleted, false);
    assert.match(
      deleted.note ?? '',
      /; ConfigMap default\/hello-lb does not exist: no service config from it$/,
    );
    assert.match(h.sink.warnings.at(-1) ?? '', /ConfigMap default\/hello-lb does not exist/);
    watch.emit('ADDED', configMap('62', { 'service-config.json': DOC_A }));
    assert.equal(h.sink.updates.at(-1)?.serviceConfig, DOC_A);
    assert.match(h.sink.warnings.at(-1) ?? '', /resourceVersion 62\) is there again/);
    h.resolver.stop();
  });

  test('another data key (…/policy.json): absent is a note; binaryData is read as UTF-8', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.configMapAnswers = [
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello:grpc?config=hello-lb/policy.json', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    assert.equal('serviceConfig' in h.sink.updates[0]!, false);
    assert.match(
      h.sink.updates[0]!.note ?? '',
      /ConfigMap default\/hello-lb has no data key "policy.json"/,
    );
    await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
    api.lastConfigWatch.emit(
      'MODIFIED',
      configMap('43', undefined, { 'policy.json': Buffer.from(DOC_B).toString('base64') }),
    );
    assert.equal(h.sink.updates.at(-1)?.serviceConfig, DOC_B);
    assert.equal(
      h.sink.updates.at(-1)?.serviceConfigSource,
      'ConfigMap default/hello-lb policy.json (resourceVersion 43)',
    );
    h.resolver.stop();
  });

  test('a 403 before the first read is an error naming the ConfigMap and the rule; no endpoints go out until it is read', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    api.configMapAnswers = [
      {
        error: {
          code: 403,
          body: JSON.stringify({
            kind: 'Status',
            code: 403,
            message:
              'configmaps is forbidden: User "u" cannot list resource "configmaps" in API group "" in the namespace "prod"',
          }),
        },
      },
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello.prod:grpc?config=hello-lb', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    await settle();
    assert.equal(h.sink.updates.length, 0);
    const error = h.sink.errors[0]!;
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, 403);
    assert.equal(error.service, 'prod/hello');
    assert.match(
      error.message,
      /^listing ConfigMap prod\/hello-lb \(service config key "service-config.json"\) at https:\/\/fake-apiserver.test:6443: 403 Forbidden: configmaps is forbidden: User "u" cannot list/,
    );
    assert.match(
      error.message,
      /Grant this identity get, list and watch on configmaps \(the core apiGroup ""\) in namespace prod/,
    );
    assert.match(
      error.message,
      /resourceNames: \["hello-lb"\] may restrict the rule to this ConfigMap/,
    );
    // The channel's retry (refresh) lists it again.
    h.resolver.refresh();
    await until('the update', () => h.sink.updates.length === 1);
    assert.equal(h.sink.updates[0]?.serviceConfig, DOC_A);
    h.resolver.stop();
  });

  test('after a good read, a failed watch keeps the document (one warning) and lists again after the backoff; 410 re-lists at once', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      api.configMapAnswers = [
        { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
      ];
      const h = setup('k8s:///hello:grpc?config=hello-lb', api);
      h.resolver.start(h.sink);
      await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
      api.lastConfigWatch.emit('ERROR', { code: 410, message: 'too old resource version' });
      await until('the re-list', () => api.configMapCalls.length === 2);
      await until(
        'a new ConfigMap watch',
        () => api.watches.filter((w) => w.kind === 'configmaps').length === 2,
      );
      api.configMapAnswers = [{ error: new Error('connect ECONNREFUSED 127.0.0.1:6443') }];
      api.lastConfigWatch.end(new Error('Premature close'));
      await settle();
      assert.equal(h.sink.warnings.length, 1);
      assert.match(
        h.sink.warnings[0]!,
        /^k8s: watching ConfigMap default\/hello-lb .*Premature close; keeping its last document/,
      );
      assert.deepEqual(h.sink.errors, []);
      // The endpoints still go out with the last document.
      api.lastWatch.emit('MODIFIED', slice('a', ['10.0.0.2'], '101'));
      assert.equal(h.sink.updates.at(-1)?.serviceConfig, DOC_A);
      mock.timers.tick(1_200);
      await until('the list after the backoff', () => api.configMapCalls.length === 3);
      await settle();
      assert.equal(h.sink.warnings.length, 2);
      assert.match(h.sink.warnings[1]!, /listing ConfigMap .*ECONNREFUSED/);
      h.resolver.stop();
      mock.timers.tick(60_000);
      await settle();
      assert.equal(api.configMapCalls.length, 3, 'stop() cancels the retry');
    } finally {
      mock.timers.reset();
    }
  });

  test('with mocked timers: a silent ConfigMap watch is replaced after 60 s; watches that keep ending at once pause before a re-list', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
      api.configMapAnswers = [
        { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
      ];
      const h = setup('k8s:///hello:grpc?config=hello-lb', api);
      h.resolver.start(h.sink);
      await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
      mock.timers.tick(WATCH_IDLE_TIMEOUT_MS - 1);
      await settle();
      assert.equal(api.configMapCalls.length, 1);
      mock.timers.tick(1);
      await until('the re-list', () => api.configMapCalls.length === 2);
      assert.ok(
        h.sink.warnings.some((w) =>
          /ConfigMap default\/hello-lb: no watch event, bookmark or end for 60 s/.test(w),
        ),
        h.sink.warnings.join('\n'),
      );
      // From now on every ConfigMap watch ends as soon as it opens.
      api.afterOpen = (watch) => {
        if (watch.kind === 'configmaps') watch.end(null);
      };
      const configWatches = (): number => api.watches.filter((w) => w.kind === 'configmaps').length;
      await until('a new ConfigMap watch', () => configWatches() === 2);
      api.lastConfigWatch.end(null);
      await until('three short watches', () => configWatches() === 4 && api.lastConfigWatch.ended);
      await settle();
      assert.equal(api.configMapCalls.length, 2, 'no re-list before the pause');
      assert.match(h.sink.warnings.at(-1) ?? '', /keep ending as soon as they open/);
      mock.timers.tick(1_200);
      await until('the re-list after the pause', () => api.configMapCalls.length === 3);
      // The document was kept throughout.
      assert.ok(h.sink.updates.every((u) => u.serviceConfig === DOC_A));
      assert.deepEqual(h.sink.errors, []);
      h.resolver.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('a 403 on the EndpointSlices of a target with config= also names the ConfigMap rule', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    api.configMapAnswers = [
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello:grpc?config=hello-lb&source=endpointslices', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    assert.match(
      h.sink.errors[0]!.message,
      /Grant this identity list and watch on endpointslices .*; its service config \(\?config=hello-lb\) also needs get, list and watch on configmaps \(the core apiGroup ""\) in that namespace$/,
    );
    h.resolver.stop();
  });

  test('a target without config= reads no ConfigMap and sends no service config', async () => {
    const api = new FakeK8sApi([list('100', slice('a', ['10.0.0.1']))]);
    const h = await started('k8s:///hello:grpc', api);
    assert.deepEqual(api.configMapCalls, []);
    assert.equal('serviceConfig' in h.sink.updates[0]!, false);
    h.resolver.stop();
  });
});

/** A slice whose endpoints name their Pods (targetRef), with optional slice labels. */
function podSlice(
  name: string,
  members: [address: string, pod: string][],
  resourceVersion = '1',
  labels?: Record<string, string>,
): SliceLike {
  return {
    metadata: { name, resourceVersion, ...(labels ? { labels } : {}) },
    addressType: 'IPv4',
    endpoints: members.map(([address, pod]) => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: 'node-1',
      targetRef: { kind: 'Pod', name: pod },
    })),
    ports: [{ name: 'grpc', port: 8080, protocol: 'TCP' }],
  };
}

function pod(name: string, labels: Record<string, string>, resourceVersion = '1'): PodLike {
  return { metadata: { name, resourceVersion, labels } };
}

/** `host=version` of each endpoint of the last update (`-`: no version label). */
function versions(sink: RecordingSink): string[] {
  const last = sink.updates.at(-1);
  assert.ok(last, 'no update yet');
  return last.endpoints.map((e) => `${e.host}=${e.labels?.['version'] ?? '-'}`);
}

const HELLO = podSlice('hello-abc', [
  ['10.0.0.1', 'hello-1'],
  ['10.0.0.2', 'hello-2'],
  ['10.0.0.3', 'hello-3'],
]);

function forbiddenPods(): { code: number; body: string } {
  return {
    code: 403,
    body: JSON.stringify({
      kind: 'Status',
      code: 403,
      message:
        'pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "prod"',
    }),
  };
}

describe('K8sEndpointResolver: ?pod_labels= (labels of the Pods the slices name)', () => {
  test('the first update waits for the Pod list; each endpoint carries its Pod’s requested labels; one key narrows the list to the Pods carrying it', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    let release = (): void => undefined;
    api.podGate = new Promise((resolve) => (release = resolve));
    api.podAnswers = [
      {
        items: [
          pod('hello-1', { version: 'v1', team: 'a' }),
          pod('hello-2', { version: 'v2' }),
          pod('hello-3', { version: 'v2' }),
        ],
        resourceVersion: '70',
      },
    ];
    const h = setup('k8s:///hello.prod:grpc?pod_labels=version', api);
    h.resolver.start(h.sink);
    await until('the slice watch', () => h.resolver.state().phase === 'watching');
    await settle();
    assert.deepEqual(h.sink.events, [], 'nothing before the Pods are listed');
    assert.deepEqual(api.podCalls, ['prod version']);
    release();
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(h.sink.updates[0], {
      endpoints: [
        {
          host: '10.0.0.1',
          port: 8080,
          labels: { node: 'node-1', pod: 'hello-1', version: 'v1' },
        },
        {
          host: '10.0.0.2',
          port: 8080,
          labels: { node: 'node-1', pod: 'hello-2', version: 'v2' },
        },
        {
          host: '10.0.0.3',
          port: 8080,
          labels: { node: 'node-1', pod: 'hello-3', version: 'v2' },
        },
      ],
      note: '3 ready endpoints from 1 EndpointSlice of Service prod/hello; 3 of 3 labelled from their Pods (pod_labels=version)',
    });
    await until('the Pod watch', () => api.watches.some((w) => w.kind === 'pods'));
    const watch = api.lastPodWatch;
    assert.deepEqual(
      [watch.namespace, watch.service, watch.resourceVersion],
      ['prod', 'version', '70'],
    );
    h.resolver.stop();
    assert.ok(watch.aborted, 'stop() ends the Pod watch');
  });

  test('several keys: every Pod is listed (no selector); the resolver’s node and pod win over Pod labels, which win over slice labels', async () => {
    const api = new FakeK8sApi([
      list(
        '100',
        podSlice('hello-abc', [['10.0.0.1', 'hello-1']], '1', { version: 'slice', track: 'x' }),
      ),
    ]);
    api.podAnswers = [
      {
        items: [pod('hello-1', { version: 'v2', pod: 'other', node: 'other', app: 'hello' })],
        resourceVersion: '70',
      },
    ];
    const h = setup('k8s:///hello.prod:grpc?pod_labels=version,pod,node', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(api.podCalls, ['prod -']);
    assert.deepEqual(h.sink.updates[0]?.endpoints[0]?.labels, {
      version: 'v2',
      track: 'x',
      pod: 'hello-1',
      node: 'node-1',
    });
    h.resolver.stop();
  });

  test('a relabelled Pod is delivered; a change to other labels, or to a Pod no endpoint names, sends nothing; a deleted Pod takes its labels away', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.podAnswers = [
      {
        items: [
          pod('hello-1', { version: 'v1' }),
          pod('hello-2', { version: 'v1' }),
          pod('hello-3', { version: 'v2' }),
        ],
        resourceVersion: '70',
      },
    ];
    const h = setup('k8s:///hello.prod:grpc?pod_labels=version', api);
    h.resolver.start(h.sink);
    await until('the Pod watch', () => api.watches.some((w) => w.kind === 'pods'));
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=v1', '10.0.0.3=v2']);
    const watch = api.lastPodWatch;
    watch.emit('MODIFIED', pod('hello-2', { version: 'v2' }, '71'));
    assert.equal(h.sink.updates.length, 2);
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=v2', '10.0.0.3=v2']);
    watch.emit('MODIFIED', pod('hello-2', { version: 'v2', restarted: 'yes' }, '72'));
    watch.emit('ADDED', pod('other-1', { version: 'v9' }, '73'));
    watch.emit('BOOKMARK', { metadata: { resourceVersion: '80' } });
    assert.equal(h.sink.updates.length, 2, 'nothing an endpoint carries changed');
    watch.emit('DELETED', pod('hello-1', { version: 'v1' }, '81'));
    assert.deepEqual(versions(h.sink), ['10.0.0.1=-', '10.0.0.2=v2', '10.0.0.3=v2']);
    assert.deepEqual(h.sink.updates.at(-1)?.endpoints[0]?.labels, {
      node: 'node-1',
      pod: 'hello-1',
    });
    assert.match(h.sink.updates.at(-1)?.note ?? '', /; 2 of 3 labelled from their Pods/);
    // A 410 re-lists the Pods from the version watched last.
    api.podAnswers = [{ items: [pod('hello-1', { version: 'v3' })], resourceVersion: '90' }];
    watch.emit('ERROR', { code: 410, message: 'too old resource version' });
    await until('the re-list', () => api.podCalls.length === 2);
    await until('the update', () => versions(h.sink)[0] === '10.0.0.1=v3');
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v3', '10.0.0.2=-', '10.0.0.3=-']);
    assert.deepEqual(h.sink.errors, []);
    h.resolver.stop();
  });

  test('a Pod the slice names before the watch has seen it: its endpoint goes out unlabelled, and is labelled when the Pod arrives', async () => {
    const api = new FakeK8sApi([list('100', podSlice('hello-abc', [['10.0.0.1', 'hello-1']]))]);
    api.podAnswers = [{ items: [pod('hello-1', { version: 'v1' })], resourceVersion: '70' }];
    const h = setup('k8s:///hello.prod:grpc?pod_labels=version', api);
    h.resolver.start(h.sink);
    await until('the Pod watch', () => api.watches.some((w) => w.kind === 'pods'));
    api.lastWatch.emit(
      'MODIFIED',
      podSlice(
        'hello-abc',
        [
          ['10.0.0.1', 'hello-1'],
          ['10.0.0.4', 'hello-4'],
        ],
        '101',
      ),
    );
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.4=-']);
    assert.match(h.sink.updates.at(-1)?.note ?? '', /; 1 of 2 labelled from their Pods/);
    api.lastPodWatch.emit('ADDED', pod('hello-4', { version: 'v2' }, '71'));
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.4=v2']);
    assert.deepEqual(h.sink.errors, []);
    h.resolver.stop();
  });

  test('a 403 on the Pods before their first list is an error naming the rule (resourceNames cannot narrow it); nothing goes out until they are listed', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.podAnswers = [
      { error: forbiddenPods() },
      { items: [pod('hello-1', { version: 'v1' })], resourceVersion: '70' },
    ];
    const h = setup('k8s:///hello.prod:grpc?pod_labels=version', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    await settle();
    assert.equal(h.sink.updates.length, 0);
    const error = h.sink.errors[0]!;
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, 403);
    assert.equal(error.service, 'prod/hello');
    assert.match(
      error.message,
      /^listing Pods of namespace prod \(for the labels version of the endpoints of Service prod\/hello\) at https:\/\/fake-apiserver.test:6443: 403 Forbidden: pods is forbidden: User "u" cannot list/,
    );
    assert.match(
      error.message,
      /Grant this identity list and watch on pods \(the core apiGroup ""\) in namespace prod .*resourceNames cannot narrow it/,
    );
    h.resolver.refresh();
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=-', '10.0.0.3=-']);
    h.resolver.stop();
  });

  test('a 403 on the EndpointSlices of a target with pod_labels= also names the Pod rule', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    const h = setup('k8s:///hello:grpc?pod_labels=version&source=endpointslices', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    assert.match(
      h.sink.errors[0]!.message,
      /; its Pod labels \(\?pod_labels=version\) also need list and watch on pods \(the core apiGroup ""\) in that namespace$/,
    );
    h.resolver.stop();
  });

  test('after a good list, an outage keeps the last labels (one warning) and lists again after the backoff; stop() cancels the retry', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      const api = new FakeK8sApi([list('100', HELLO)]);
      api.podAnswers = [
        {
          items: [pod('hello-1', { version: 'v1' }), pod('hello-2', { version: 'v2' })],
          resourceVersion: '70',
        },
      ];
      const h = setup('k8s:///hello:grpc?pod_labels=version', api);
      h.resolver.start(h.sink);
      await until('the Pod watch', () => api.watches.some((w) => w.kind === 'pods'));
      api.podAnswers = [{ error: new Error('connect ECONNREFUSED 127.0.0.1:6443') }];
      api.lastPodWatch.end(new Error('Premature close'));
      await settle();
      assert.equal(h.sink.warnings.length, 1);
      assert.match(
        h.sink.warnings[0]!,
        /^k8s: watching Pods of namespace default .*Premature close; keeping the last Pod labels/,
      );
      assert.deepEqual(h.sink.errors, []);
      // The endpoints still go out with the last labels.
      api.lastWatch.emit(
        'MODIFIED',
        podSlice(
          'hello-abc',
          [
            ['10.0.0.1', 'hello-1'],
            ['10.0.0.2', 'hello-2'],
          ],
          '101',
        ),
      );
      assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=v2']);
      mock.timers.tick(1_200);
      await until('the list after the backoff', () => api.podCalls.length === 2);
      await settle();
      assert.equal(h.sink.warnings.length, 2);
      assert.match(h.sink.warnings[1]!, /listing Pods of namespace default .*ECONNREFUSED/);
      assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=v2']);
      assert.deepEqual(h.sink.errors, []);
      h.resolver.stop();
      mock.timers.tick(60_000);
      await settle();
      assert.equal(api.podCalls.length, 2, 'stop() cancels the retry');
    } finally {
      mock.timers.reset();
    }
  });

  test('with config= too: the first update waits for both the Pods and the document, and carries both', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    let release = (): void => undefined;
    api.podGate = new Promise((resolve) => (release = resolve));
    api.podAnswers = [{ items: [pod('hello-1', { version: 'v1' })], resourceVersion: '70' }];
    api.configMapAnswers = [
      { items: [configMap('42', { 'service-config.json': DOC_A })], resourceVersion: '50' },
    ];
    const h = setup('k8s:///hello.prod:grpc?config=hello-lb&pod_labels=version', api);
    h.resolver.start(h.sink);
    await until('the ConfigMap watch', () => api.watches.some((w) => w.kind === 'configmaps'));
    await settle();
    assert.deepEqual(h.sink.events, [], 'the document alone is not enough');
    release();
    await until('the update', () => h.sink.updates.length === 1);
    assert.equal(h.sink.updates[0]?.serviceConfig, DOC_A);
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=-', '10.0.0.3=-']);
    assert.match(
      h.sink.updates[0]?.note ?? '',
      /; 1 of 3 labelled from their Pods \(pod_labels=version\); service config from ConfigMap prod\/hello-lb/,
    );
    h.resolver.stop();
  });

  test('a target without pod_labels= lists no Pods', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    const h = await started('k8s:///hello:grpc', api);
    assert.deepEqual(api.podCalls, []);
    assert.deepEqual(versions(h.sink), ['10.0.0.1=-', '10.0.0.2=-', '10.0.0.3=-']);
    h.resolver.stop();
  });
});

const MINUTE_AGO = '2026-01-01T00:00:00Z';

/** A VirtualService for `hosts` splitting SayHello over subsets v1/v2/v3 by `weights`. */
function virtualService(
  name: string,
  resourceVersion: string,
  weights: [number, number, number],
  extra: { hosts?: string[]; exportTo?: string[]; created?: string; http?: unknown } = {},
): IstioObjectLike {
  return {
    metadata: {
      name,
      namespace: 'prod',
      resourceVersion,
      creationTimestamp: extra.created ?? MINUTE_AGO,
    },
    spec: {
      hosts: extra.hosts ?? ['hello'],
      ...(extra.exportTo ? { exportTo: extra.exportTo } : {}),
      http: extra.http ?? [
        {
          match: [{ uri: { exact: '/helloworld.Greeter/SayHello' } }],
          route: weights.map((weight, i) => ({
            destination: { host: 'hello', subset: `v${i + 1}` },
            weight,
          })),
        },
        { route: [{ destination: { host: 'hello', subset: 'v1' } }] },
      ],
    },
  };
}

/** A DestinationRule for `host` with subsets v1/v2/v3 selecting Pod label `key`. */
function destinationRule(
  name: string,
  resourceVersion: string,
  extra: { host?: string; key?: string } = {},
): IstioObjectLike {
  const key = extra.key ?? 'version';
  return {
    metadata: { name, namespace: 'prod', resourceVersion, creationTimestamp: MINUTE_AGO },
    spec: {
      host: extra.host ?? 'hello.prod.svc.cluster.local',
      subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { [key]: v } })),
    },
  };
}

/** The traffic split's weights on the SayHello route of a delivered config. */
function sayHelloWeights(resolution: Resolution | undefined): number[] {
  const config = resolution?.serviceConfig as
    | {
        loadBalancingConfig: {
          'grpc-lb.traffic_split': { routes: { split: { weight: number }[] }[] };
        }[];
      }
    | undefined;
  assert.ok(config && typeof config === 'object', 'no service config object');
  const split = config.loadBalancingConfig[0]!['grpc-lb.traffic_split'];
  return split.routes[0]!.split.map((s) => s.weight);
}

function istioList(
  resourceVersion: string,
  ...items: IstioObjectLike[]
): { items: IstioObjectLike[]; resourceVersion: string } {
  return { items, resourceVersion };
}

describe('K8sEndpointResolver: ?istio=true (the service config from VirtualServices and DestinationRules)', () => {
  test('the first update waits for both lists and the Pods its subsets select; it carries the translation, named with each resource and its resourceVersion', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    let release = (): void => undefined;
    api.istioGate = new Promise((resolve) => (release = resolve));
    api.istioAnswers.virtualservices = [
      istioList(
        '80',
        virtualService('hello', '71', [30, 60, 10]),
        virtualService('other', '72', [1, 1, 1], { hosts: ['other'] }),
      ),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    api.podAnswers = [
      {
        items: [
          pod('hello-1', { version: 'v1' }),
          pod('hello-2', { version: 'v2' }),
          pod('hello-3', { version: 'v3' }),
        ],
        resourceVersion: '90',
      },
    ];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the slice watch', () => h.resolver.state().phase === 'watching');
    await settle();
    assert.equal(h.sink.updates.length, 0, 'nothing before the Istio resources are read');
    assert.deepEqual(api.podCalls, [], 'the Pods wait for the subsets');
    release();
    await until('the update', () => h.sink.updates.length === 1);
    assert.equal(api.istioVersionCalls.length, 1, 'API discovery is made once for both kinds');
    assert.deepEqual(api.istioCalls.sort(), [
      'destinationrules v1 prod',
      'virtualservices v1 prod',
    ]);
    assert.deepEqual(api.podCalls, ['prod version'], 'the label its subsets select is followed');
    const update = h.sink.updates[0]!;
    assert.deepEqual(sayHelloWeights(update), [30, 60, 10]);
    assert.equal(
      update.serviceConfigSource,
      'VirtualService prod/hello (resourceVersion 71), DestinationRule prod/hello (resourceVersion 73) (networking.istio.io/v1)',
    );
    assert.deepEqual(versions(h.sink), ['10.0.0.1=v1', '10.0.0.2=v2', '10.0.0.3=v3']);
    assert.match(
      update.note ?? '',
      /3 of 3 labelled from their Pods \(pod_labels=version\); service config from VirtualService prod\/hello \(resourceVersion 71\)/,
    );
    assert.doesNotThrow(() => checkServiceConfig(update.serviceConfig, 'test'));
    assert.equal(
      h.sink.warnings.filter((w) => w.includes('other')).length,
      0,
      'a VirtualService for another host is not read at all',
    );
    // The watches start from each list's version.
    await until('the Istio watches', () => api.watches.some((w) => w.kind === 'destinationrules'));
    assert.equal(api.lastIstioWatch('virtualservices').resourceVersion, '80');
    assert.equal(api.lastIstioWatch('destinationrules').resourceVersion, '81');
    h.resolver.stop();
    assert.ok(api.lastIstioWatch('virtualservices').aborted, 'stop() ends the watches');
    assert.ok(api.lastIstioWatch('destinationrules').aborted);
  });

  test('an edit is delivered with the new resourceVersion; the Pods are not listed again while the subsets select the same labels', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      istioList('80', virtualService('hello', '71', [30, 60, 10])),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until(
      'the Istio watches',
      () => api.watches.some((w) => w.kind === 'destinationrules') && h.sink.updates.length === 1,
    );
    api
      .lastIstioWatch('virtualservices')
      .emit('MODIFIED', virtualService('hello', '74', [0, 100, 0]));
    assert.equal(h.sink.updates.length, 2);
    assert.deepEqual(sayHelloWeights(h.sink.updates[1]), [0, 100, 0]);
    assert.match(
      h.sink.updates[1]?.serviceConfigSource ?? '',
      /^VirtualService prod\/hello \(resourceVersion 74\)/,
    );
    assert.deepEqual(api.podCalls, ['prod version']);
    // The same version again (a re-list, a duplicate event) sends nothing.
    api
      .lastIstioWatch('virtualservices')
      .emit('MODIFIED', virtualService('hello', '74', [0, 100, 0]));
    assert.equal(h.sink.updates.length, 2);
    // A DestinationRule whose subsets select another label: the Pods are listed for it.
    api
      .lastIstioWatch('destinationrules')
      .emit('MODIFIED', destinationRule('hello', '75', { key: 'track' }));
    await until('the Pods listed again', () => api.podCalls.length === 2);
    assert.equal(api.podCalls[1], 'prod track');
    await until('the update', () => h.sink.updates.length === 3);
    h.resolver.stop();
  });

  test('a bad edit keeps the last good config and warns once; a good edit applies again', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      istioList('80', virtualService('hello', '71', [30, 60, 10])),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until(
      'the Istio watches',
      () => api.watches.some((w) => w.kind === 'destinationrules') && h.sink.updates.length === 1,
    );
    const watch = api.lastIstioWatch('virtualservices');
    const warnings = h.sink.warnings.length;
    watch.emit('MODIFIED', virtualService('hello', '76', [30, 60, 10], { http: 'not a list' }));
    // The same version again (a re-list, a duplicate event): said once.
    watch.emit('MODIFIED', virtualService('hello', '76', [30, 60, 10], { http: 'not a list' }));
    assert.equal(h.sink.errors.length, 0);
    assert.equal(h.sink.updates.length, 1, 'the last good config stands');
    const said = h.sink.warnings.slice(warnings);
    assert.equal(said.length, 1, said.join('\n'));
    assert.match(
      said[0]!,
      /^k8s prod\/hello: the Istio resources cannot be used \(VirtualService prod\/hello: http: .*read from VirtualService prod\/hello \(resourceVersion 76\).*\): keeping the last good service config, from VirtualService prod\/hello \(resourceVersion 71\)/,
    );
    // Another bad version is another warning, naming it.
    watch.emit('MODIFIED', virtualService('hello', '77', [30, 60, 10], { http: 'not a list' }));
    assert.equal(h.sink.updates.length, 1);
    assert.match(
      h.sink.warnings.at(-1) ?? '',
      /read from VirtualService prod\/hello \(resourceVersion 77\)/,
    );
    watch.emit('MODIFIED', virtualService('hello', '78', [10, 10, 80]));
    assert.deepEqual(sayHelloWeights(h.sink.updates.at(-1)), [10, 10, 80]);
    assert.match(
      h.sink.warnings.at(-1) ?? '',
      /service config from VirtualService prod\/hello \(resourceVersion 78\)/,
    );
    h.resolver.stop();
  });

  test('unusable from the start: an error naming the resource, no update; a fix applies', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      istioList('80', virtualService('hello', '71', [30, 60, 10], { http: 'not a list' })),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    await settle();
    assert.equal(h.sink.updates.length, 0);
    const error = h.sink.errors[0]!;
    assert.ok(error instanceof K8sResolutionError);
    assert.match(
      error.message,
      /^the service config of Service prod\/hello from its Istio resources \(VirtualService prod\/hello \(resourceVersion 71\), DestinationRule prod\/hello \(resourceVersion 73\)\) cannot be used: VirtualService prod\/hello: http/,
    );
    await until('the watch', () => api.watches.some((w) => w.kind === 'virtualservices'));
    api
      .lastIstioWatch('virtualservices')
      .emit('MODIFIED', virtualService('hello', '79', [30, 60, 10]));
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(sayHelloWeights(h.sink.updates[0]), [30, 60, 10]);
    h.resolver.stop();
  });

  test('every field not carried over is warned about once per resource version', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    const faulty = (version: string): IstioObjectLike =>
      virtualService('hello', version, [30, 60, 10], {
        http: [
          {
            fault: { abort: { percentage: { value: 1 }, httpStatus: 503 } },
            route: [{ destination: { host: 'hello', subset: 'v1' } }],
          },
        ],
      });
    api.istioAnswers.virtualservices = [istioList('80', faulty('71'))];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until(
      'the Istio watches',
      () => api.watches.some((w) => w.kind === 'destinationrules') && h.sink.updates.length === 1,
    );
    const fault = (): string[] => h.sink.warnings.filter((w) => w.includes('http[0].fault'));
    assert.equal(fault().length, 1);
    assert.match(fault()[0]!, /^k8s prod\/hello: VirtualService prod\/hello: http\[0\]\.fault/);
    // A DestinationRule edit: the VirtualService's warning is not repeated.
    api.lastIstioWatch('destinationrules').emit('MODIFIED', destinationRule('hello', '74'));
    assert.equal(fault().length, 1);
    api.lastIstioWatch('virtualservices').emit('MODIFIED', faulty('75'));
    assert.equal(fault().length, 2, 'a new version of the resource is warned about again');
    h.resolver.stop();
  });

  test('host forms and exportTo: short, svc.ns and FQDN names are read; another namespace, another host or a resource hidden by exportTo is not', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      istioList(
        '80',
        virtualService('hidden', '60', [1, 0, 0], {
          exportTo: ['~'],
          created: '2025-01-01T00:00:00Z',
        }),
        virtualService('elsewhere', '61', [1, 0, 0], { hosts: ['hello.staging'] }),
        virtualService('newer', '62', [0, 0, 1], {
          hosts: ['hello.prod'],
          created: '2026-06-01T00:00:00Z',
        }),
        virtualService('oldest', '63', [0, 1, 0], {
          hosts: ['hello.prod.svc.cluster.local'],
          exportTo: ['.'],
        }),
      ),
    ];
    api.istioAnswers.destinationrules = [
      istioList('81', destinationRule('hello', '73', { host: 'hello' })),
    ];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(
      sayHelloWeights(h.sink.updates[0]),
      [0, 1, 0],
      'the oldest VirtualService applies',
    );
    assert.ok(
      h.sink.warnings.some((w) =>
        /^k8s prod\/hello: VirtualService prod\/hidden \(resourceVersion 60\): its exportTo hides it from clients in namespace prod: not used$/.test(
          w,
        ),
      ),
      h.sink.warnings.join('\n'),
    );
    assert.ok(h.sink.warnings.some((w) => /VirtualService prod\/newer.*already used/.test(w)));
    assert.ok(!h.sink.warnings.some((w) => w.includes('elsewhere')));
    h.resolver.stop();
  });

  test('no resource names the Service: a note and a warning, no service config; one appearing later applies', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    const first = h.sink.updates[0]!;
    assert.equal('serviceConfig' in first, false);
    assert.match(
      first.note ?? '',
      /; no VirtualService or DestinationRule of namespace prod names Service hello: no service config from Istio$/,
    );
    assert.deepEqual(api.podCalls, [], 'no subset, no Pod labels');
    assert.match(h.sink.warnings.at(-1) ?? '', /the channel's own applies until one appears/);
    await until('the watch', () => api.watches.some((w) => w.kind === 'destinationrules'));
    api.lastIstioWatch('destinationrules').emit('ADDED', destinationRule('hello', '90'));
    await until('the update', () => h.sink.updates.length === 2);
    assert.equal(
      h.sink.updates[1]?.serviceConfigSource,
      'DestinationRule prod/hello (resourceVersion 90) (networking.istio.io/v1)',
    );
    h.resolver.stop();
  });

  test('API discovery: v1beta1 when v1 is not served; neither is an error saying so', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioServed = 'v1beta1';
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(api.istioCalls.sort(), [
      'destinationrules v1beta1 prod',
      'virtualservices v1beta1 prod',
    ]);
    await until('the watches', () => api.watches.some((w) => w.kind === 'destinationrules'));
    assert.equal(api.lastIstioWatch('virtualservices').service, 'v1beta1');
    h.resolver.stop();

    const none = new FakeK8sApi([list('100', HELLO)]);
    none.istioServed = undefined;
    const n = setup('k8s:///hello.prod:grpc?istio=true', none);
    n.resolver.start(n.sink);
    await until('the error', () => n.sink.errors.length >= 1);
    assert.match(
      n.sink.errors[0]!.message,
      /serves neither networking.istio.io\/v1 nor networking.istio.io\/v1beta1 \(are the Istio CRDs installed\?\)/,
    );
    assert.equal(n.sink.updates.length, 0);
    // Installed since: the next refresh discovers again.
    none.istioServed = 'v1';
    n.resolver.refresh();
    await until('the update', () => n.sink.updates.length === 1);
    n.resolver.stop();
  });

  test('a 403 before the first read is an error naming the rule; after a refresh it works', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      {
        error: {
          code: 403,
          body: JSON.stringify({
            kind: 'Status',
            code: 403,
            message:
              'virtualservices.networking.istio.io is forbidden: User "u" cannot list resource "virtualservices" in API group "networking.istio.io" in the namespace "prod"',
          }),
        },
      },
      istioList('80', virtualService('hello', '71', [30, 60, 10])),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.length === 1);
    await settle();
    assert.equal(h.sink.updates.length, 0);
    const error = h.sink.errors[0]!;
    assert.ok(error instanceof K8sResolutionError);
    assert.equal(error.status, 403);
    assert.match(
      error.message,
      /^listing VirtualServices \(networking.istio.io\) of namespace prod \(the service config of Service prod\/hello, istio=true\) at https:\/\/fake-apiserver.test:6443: 403 Forbidden: virtualservices.networking.istio.io is forbidden/,
    );
    assert.match(
      error.message,
      /Grant this identity list and watch on virtualservices and destinationrules \(apiGroup networking.istio.io\) in namespace prod/,
    );
    h.resolver.refresh();
    await until('the update', () => h.sink.updates.length === 1);
    assert.deepEqual(sayHelloWeights(h.sink.updates[0]), [30, 60, 10]);
    h.resolver.stop();
  });

  test('after a good read, a failed watch keeps the config (one warning), with no error', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    api.istioAnswers.virtualservices = [
      istioList('80', virtualService('hello', '71', [30, 60, 10])),
    ];
    api.istioAnswers.destinationrules = [istioList('81', destinationRule('hello', '73'))];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until(
      'the Istio watches',
      () => api.watches.some((w) => w.kind === 'virtualservices') && h.sink.updates.length === 1,
    );
    api.lastIstioWatch('virtualservices').end(Object.assign(new Error('connection reset'), {}));
    await settle();
    assert.equal(h.sink.errors.length, 0);
    assert.equal(h.sink.updates.length, 1);
    assert.match(
      h.sink.warnings.at(-1) ?? '',
      /^k8s: watching VirtualServices .*connection reset; keeping the last VirtualServices and listing them again with backoff/,
    );
    h.resolver.stop();
  });

  test('a 403 on the EndpointSlices of a target with istio=true also names the Istio rule', async () => {
    const api = new FakeK8sApi([{ error: forbidden() }]);
    const h = setup('k8s:///hello:grpc?istio=true&source=endpointslices', api);
    h.resolver.start(h.sink);
    await until('the error', () => h.sink.errors.some((e) => /EndpointSlices/.test(e.message)));
    assert.match(
      h.sink.errors.find((e) => /EndpointSlices/.test(e.message))!.message,
      /; its service config \(\?istio=true\) also needs list and watch on virtualservices and destinationrules \(apiGroup networking.istio.io\), and list and watch on pods/,
    );
    h.resolver.stop();
  });
});

describe('K8sEndpointResolver: ?istio=true, resources that do not apply to mesh clients', () => {
  test('a VirtualService bound to gateways only: no service config (a note and a warning), not an error', async () => {
    const api = new FakeK8sApi([list('100', HELLO)]);
    const gatewayOnly = virtualService('hello', '71', [30, 60, 10]);
    api.istioAnswers.virtualservices = [
      istioList('80', {
        ...gatewayOnly,
        spec: { ...(gatewayOnly.spec as object), gateways: ['ingress'] },
      }),
    ];
    const h = setup('k8s:///hello.prod:grpc?istio=true', api);
    h.resolver.start(h.sink);
    await until('the update', () => h.sink.updates.length === 1);
    assert.equal(h.sink.errors.length, 0);
    assert.equal('serviceConfig' in h.sink.updates[0]!, false);
    assert.match(h.sink.updates[0]!.note ?? '', /gateways only .*: no service config from Istio$/);
    h.resolver.stop();
  });
});
