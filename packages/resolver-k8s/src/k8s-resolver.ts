import {
  Backoff,
  redactSecrets,
  type EndpointResolver,
  type Resolution,
  type ResolutionSink,
} from '@grpc-lb/core';
import { IstioTranslationError, translateIstio } from '@grpc-lb/istio';
import { ConfigMapFollower, type ConfigDocument } from './config-map';
import { K8sResolutionError } from './errors';
import type { FollowerTimings } from './follower';
import {
  statusMessage,
  statusOf,
  type IstioObjectLike,
  type IstioVersion,
  type K8sApi,
  type K8sConnectionOptions,
  type WatchEventType,
} from './k8s-client';
import {
  byCreation,
  exportedToOwnNamespace,
  IstioNotServedError,
  IstioResourceFollower,
  ISTIO_NOUN,
  ISTIO_RULE,
  namesService,
  subsetLabelKeys,
} from './istio';
import type { K8sEndpointSource, K8sTarget } from './k8s-target';
import { PodLabelFollower } from './pod-labels';
import { slicesFromEndpoints, type EndpointsLike } from './endpoints';
import { endpointsFromSlices, servicePortName, type ServiceLike, type SliceLike } from './slices';

/** The resource a list or watch is made on ('either': EndpointSlices and then Endpoints). */
export type K8sResource = 'endpointslices' | 'endpoints' | 'either';

const RESOURCE_NOUN: Record<K8sResource, string> = {
  endpointslices: 'EndpointSlices',
  endpoints: 'Endpoints',
  either: 'EndpointSlices',
};

/** How the merge names the slices made from an Endpoints object's subsets. */
const SUBSET_NOUN = { one: 'Endpoints subset', many: 'Endpoints subsets' } as const;

/** A list failure and the resource it was made on (for the grant the message names). */
class ListFailure extends Error {
  constructor(
    readonly failure: unknown,
    readonly resource: K8sResource,
  ) {
    super('list failed');
  }
}

type Listed = { items: { metadata?: { name?: string } }[]; resourceVersion: string };

/** A watch that ends sooner than this after opening, repeatedly, is re-listed after a pause. */
const SHORT_WATCH_MS = 1_000;
/**
 * No event, bookmark or end for this long: the watch is presumed dead and replaced. The server is
 * asked to end every watch after 40–50 s (and sends a bookmark before it does), so a live watch
 * always shows a sign of life within this.
 */
export const WATCH_IDLE_TIMEOUT_MS = 60_000;
/** A watch open this long counts as working: the watch retry backoff starts over. */
export const WATCH_STABLE_MS = 30_000;
/** After a watch failure (the list had succeeded): first retry, growing ×1.6 (±20%) up to the cap. */
export const WATCH_RETRY_INITIAL_MS = 1_000;
export const WATCH_RETRY_MAX_MS = 30_000;
/** The same watch discipline for the ConfigMap, Pod and Istio followers as for the slices. */
const FOLLOWER_TIMINGS: FollowerTimings = {
  shortWatchMs: SHORT_WATCH_MS,
  watchIdleTimeoutMs: WATCH_IDLE_TIMEOUT_MS,
  watchStableMs: WATCH_STABLE_MS,
  retryInitialMs: WATCH_RETRY_INITIAL_MS,
  retryMaxMs: WATCH_RETRY_MAX_MS,
};
/** While the Service is missing (or lacks the port), it is looked for again this often. */
export const SERVICE_RETRY_MS = 5_000;

export interface K8sResolverState {
  /**
   * 'idle' before start/after stop; 'listing'; 'watching'; 'broken' after an error (a list error
   * waits for refresh; a watch error for the resolver's own backoff).
   */
  readonly phase: 'idle' | 'listing' | 'watching' | 'broken';
  readonly resourceVersion: string | undefined;
  /** What the last list read: undefined before one succeeded. */
  readonly source: 'endpointslices' | 'endpoints' | undefined;
  /** EndpointSlices held (with the Endpoints source: the Endpoints objects, 0 or 1). */
  readonly slices: number;
  /** Lists made since start (1 + re-lists after 410 Gone, errors and refreshes). */
  readonly lists: number;
  /** Watches opened since start. */
  readonly watches: number;
}

/** The service config translated from the Istio resources (`?istio=true`), or why there is none. */
type IstioConfig =
  | {
      readonly present: true;
      readonly config: Record<string, unknown>;
      /** `VirtualService prod/hello2 (resourceVersion 12), DestinationRule … (networking.istio.io/v1)`. */
      readonly source: string;
    }
  | { readonly present: false; readonly absence: string };

/** What reading the Service gave: the Service (undefined: it does not exist), or a 403. */
type ServiceRead = { service: ServiceLike | undefined } | { forbidden: unknown };

/**
 * Every EndpointSlice of one Service, listed then watched from the list's resourceVersion, merged
 * by slice name. A watch the server ends is reopened from the last resourceVersion; 410 Gone
 * (the version was compacted) re-lists. A list failure is reported to the sink (the channel
 * keeps its last good endpoints) and the next `refresh()` re-lists. A watch failure after a good
 * list is a warning (once, until a watch works again): the listed endpoints stay, and the
 * resolver lists and watches again after its own jittered, growing backoff (1 s → 30 s).
 *
 * With `?config=` the ConfigMap holding the service config is followed too (ConfigMapFollower),
 * and with `?pod_labels=` the labels of the namespace's Pods (PodLabelFollower); the first update
 * waits for the first read of each, and every update carries both.
 */
export class K8sEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  private generation = 0;
  private phase: K8sResolverState['phase'] = 'idle';
  /** Each object listed or watched (by name), as slices: an Endpoints object gives several. */
  private slices = new Map<string, readonly SliceLike[]>();
  /**
   * The resource followed, once a list succeeded; with `auto`, a fallback to Endpoints holds
   * until `stop()` (a new channel looks for EndpointSlices again).
   */
  private using: 'endpointslices' | 'endpoints' | undefined;
  private service: ServiceLike | undefined;
  /** `get` on the Service was refused (403): ports are matched on the slices alone. */
  private serviceForbidden = false;
  private resourceVersion: string | undefined;
  private watch: { abort(): void } | undefined;
  /** The watch whose callbacks count; cleared when we close it, so its own AbortError is ignored. */
  private watchToken: object | undefined;
  private listing = false;
  private relistRequested = false;
  private serviceReading = false;
  private serviceTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  /** The resolver's own retry after a watch failure; `refresh()` does not cut it short. */
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly watchBackoff = new Backoff({
    initialMs: WATCH_RETRY_INITIAL_MS,
    maxMs: WATCH_RETRY_MAX_MS,
  });
  private shortWatches = 0;
  private lists = 0;
  private watches = 0;
  private api: Promise<K8sApi> | undefined;
  /** Aborts list and get requests in flight at `stop()`. */
  private requests = new AbortController();
  /** Lasting conditions warned about (key → text): each is said once, and again when it clears. */
  private readonly troubles = new Map<string, string>();
  /**
   * Where endpoints are read from (the target's `?source=`, else the option): `endpointslices`
   * (discovery.k8s.io/v1), `endpoints` (core/v1 Endpoints, for clusters or identities without
   * EndpointSlices), or `auto`: EndpointSlices, and Endpoints when listing EndpointSlices answers
   * 404 (not served) or 403 (not allowed) while the Endpoints can be listed.
   */
  private readonly source: K8sEndpointSource;
  /** The slice warnings of the last publish: only new ones are emitted. */
  private sliceWarnings = new Set<string>();
  /** With `?config=`: follows the ConfigMap holding the service config. */
  private follower: ConfigMapFollower | undefined;
  /** What the ConfigMap held at its last read (undefined: not read yet since `start()`). */
  private document: ConfigDocument | undefined;
  /** With `?pod_labels=`: follows the requested labels of the namespace's Pods. */
  private pods: PodLabelFollower | undefined;
  /** The endpoints last published, sent again with the document or Pod labels when they change. */
  private held: Resolution | undefined;
  /** The keys the Pod follower was made for. */
  private podKeys: readonly string[] | undefined;
  /** With `?istio=true`: follow the VirtualServices and the DestinationRules of the namespace. */
  private istioFollowers: readonly IstioResourceFollower[] | undefined;
  /** API discovery of networking.istio.io, made once (again only after it failed). */
  private istioVersion: Promise<IstioVersion> | undefined;
  /** The config the Istio resources give (undefined: not read, or unusable since the start). */
  private istio: IstioConfig | undefined;
  /** The label keys the delivered Istio config's subsets select on. */
  private istioKeys: readonly string[] = [];
  /** Istio warnings already given, each with the resource version it is about. */
  private istioWarned = new Set<string>();

  constructor(
    private readonly target: K8sTarget,
    private readonly connection: K8sConnectionOptions,
    private readonly createApi: (options: K8sConnectionOptions) => Promise<K8sApi>,
    source: K8sEndpointSource = 'auto',
  ) {
    this.source = target.source ?? source;
  }

  state(): K8sResolverState {
    return {
      phase: this.phase,
      resourceVersion: this.resourceVersion,
      source: this.using,
      slices: this.slices.size,
      lists: this.lists,
      watches: this.watches,
    };
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.lists = 0;
    this.watches = 0;
    this.requests = new AbortController();
    void this.listAndWatch(this.generation);
  }

  refresh(): void {
    if (this.phase === 'broken' && this.retryTimer === undefined) {
      void this.listAndWatch(this.generation);
    }
    this.follower?.refresh();
    this.pods?.refresh();
    for (const follower of this.istioFollowers ?? []) follower.refresh();
  }

  stop(): void {
    this.generation++;
    this.sink = undefined;
    this.phase = 'idle';
    this.listing = false;
    this.relistRequested = false;
    this.serviceReading = false;
    this.requests.abort();
    this.closeWatch();
    this.clearRetryTimers();
    this.slices = new Map();
    this.using = undefined;
    this.service = undefined;
    this.serviceForbidden = false;
    this.resourceVersion = undefined;
    this.shortWatches = 0;
    this.watchBackoff.reset();
    this.troubles.clear();
    this.sliceWarnings = new Set();
    this.follower?.stop();
    this.follower = undefined;
    this.pods?.stop();
    this.pods = undefined;
    this.podKeys = undefined;
    for (const follower of this.istioFollowers ?? []) follower.stop();
    this.istioFollowers = undefined;
    this.istioVersion = undefined;
    this.istio = undefined;
    this.istioKeys = [];
    this.istioWarned = new Set();
    this.document = undefined;
    this.held = undefined;
  }

  private closeWatch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    this.watchToken = undefined;
    const watch = this.watch;
    this.watch = undefined;
    watch?.abort();
  }

  private clearRetryTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.serviceTimer) clearTimeout(this.serviceTimer);
    this.serviceTimer = undefined;
  }

  private namespace(api: K8sApi): string {
    return this.target.namespace ?? api.defaultNamespace;
  }

  private name(api: K8sApi): string {
    return `${this.namespace(api)}/${this.target.service}`;
  }

  /** Warns about a lasting condition once (again only if its text changes). */
  private raise(key: string, text: string): void {
    if (this.troubles.get(key) === text) return;
    this.troubles.set(key, text);
    this.sink?.warn(text);
  }

  /** Says that a condition warned about is over (nothing when there was none). */
  private clear(key: string, text: string): void {
    if (!this.troubles.delete(key)) return;
    this.sink?.warn(text);
  }

  private async listAndWatch(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    if (this.listing) {
      // A 410 or an error seen while this list's watch was opening: list again right after.
      this.relistRequested = true;
      return;
    }
    this.listing = true;
    this.phase = 'listing';
    this.closeWatch();
    this.clearRetryTimers();
    this.lists++;
    let api: K8sApi | undefined;
    try {
      this.api ??= this.createApi(this.connection);
      api = await this.api;
      if (generation !== this.generation) return;
      this.followConfig(api, generation);
      this.followIstio(api, generation);
      this.followPods(api, generation);
      const namespace = this.namespace(api);
      const signal = this.requests.signal;
      const [listed, read] = await Promise.all([
        this.list(api, namespace, signal),
        this.needsService() ? this.readService(api) : undefined,
      ]);
      if (generation !== this.generation) return;
      const { using, list, fallback } = listed;
      this.using = using;
      if (fallback !== undefined) this.raise('source', fallback);
      if (read) this.applyServiceRead(api, read);
      this.slices = new Map(
        list.items.map((item, i) => [item.metadata?.name ?? `#${i}`, this.asSlices(item)]),
      );
      this.resourceVersion = list.resourceVersion;
      this.publish(api, generation);
      try {
        await this.openWatch(api, generation);
      } catch (error) {
        if (generation === this.generation) this.watchFailed(error, api, generation);
      }
    } catch (error) {
      if (generation !== this.generation) return;
      // A failed config (no kubeconfig) is not retried with the same promise.
      if (api === undefined) this.api = undefined;
      if (error instanceof ListFailure) this.fail(error.failure, api, 'listing', error.resource);
      else this.fail(error, api, 'listing', this.resource());
    } finally {
      if (generation === this.generation) {
        this.listing = false;
        if (this.relistRequested) {
          this.relistRequested = false;
          void this.listAndWatch(generation);
        }
      }
    }
  }

  /**
   * Lists the source's objects. With `auto`, EndpointSlices first; on a 404 (not served) or 403
   * (not allowed) the Endpoints, and `fallback` says so. A failure is a ListFailure naming the
   * resource (`either` when both were refused).
   */
  private async list(
    api: K8sApi,
    namespace: string,
    signal: AbortSignal,
  ): Promise<{ using: 'endpointslices' | 'endpoints'; list: Listed; fallback?: string }> {
    const service = this.target.service;
    if (this.source === 'endpoints' || this.using === 'endpoints') {
      try {
        return { using: 'endpoints', list: await api.listEndpoints(namespace, service, signal) };
      } catch (error) {
        throw new ListFailure(error, 'endpoints');
      }
    }
    let refused: unknown;
    try {
      return { using: 'endpointslices', list: await api.listSlices(namespace, service, signal) };
    } catch (error) {
      const status = statusOf(error);
      if (this.source !== 'auto' || (status !== 404 && status !== 403)) {
        throw new ListFailure(error, 'endpointslices');
      }
      refused = error;
    }
    let list: Listed;
    try {
      list = await api.listEndpoints(namespace, service, signal);
    } catch (error) {
      const status = statusOf(error);
      // Neither is readable: the EndpointSlices' refusal is the one to fix.
      if (status === 403 || status === 404) throw new ListFailure(refused, 'either');
      throw new ListFailure(error, 'endpoints');
    }
    const name = `${namespace}/${service}`;
    const status = statusOf(refused);
    const why =
      status === 404
        ? '404: the API server does not serve discovery.k8s.io/v1'
        : `403 Forbidden: ${statusMessage(refused) ?? 'Forbidden'}`;
    const fallback =
      `k8s ${name}: listing EndpointSlices at ${api.server}: ${why}; following the Service's ` +
      `core/v1 Endpoints instead (they carry no terminating endpoints)` +
      (status === 403
        ? `. Grant this identity list and watch on endpointslices (apiGroup discovery.k8s.io) in namespace ${namespace} to use EndpointSlices`
        : '');
    return { using: 'endpoints', list, fallback };
  }

  /** The resource lists and watches are made on now. */
  private resource(): 'endpointslices' | 'endpoints' {
    return this.source === 'endpoints' || this.using === 'endpoints'
      ? 'endpoints'
      : 'endpointslices';
  }

  /** A listed or watched object as the slices the merge reads. */
  private asSlices(object: unknown): readonly SliceLike[] {
    return this.resource() === 'endpoints'
      ? slicesFromEndpoints(object as EndpointsLike)
      : [object as SliceLike];
  }

  private needsService(): boolean {
    return this.target.port.kind !== 'name';
  }

  /** Reads the Service; a 403 is an answer too (the slices' ports are used instead). */
  private async readService(api: K8sApi): Promise<ServiceRead> {
    try {
      const service = await api.readService(
        this.namespace(api),
        this.target.service,
        this.requests.signal,
      );
      return { service };
    } catch (error) {
      if (statusOf(error) === 403) return { forbidden: error };
      throw error;
    }
  }

  private applyServiceRead(api: K8sApi, read: ServiceRead): void {
    const name = this.name(api);
    if ('forbidden' in read) {
      this.serviceForbidden = true;
      this.service = undefined;
      const detail = statusMessage(read.forbidden) ?? 'Forbidden';
      const endpoints = this.resource() === 'endpoints';
      const matching =
        this.target.port.kind === 'number'
          ? `port ${this.target.port.value} is matched against the pods' port numbers in the ${endpoints ? 'Endpoints' : 'EndpointSlices'}`
          : `each ${endpoints ? 'Endpoints subset' : 'EndpointSlice'}'s only TCP port is used`;
      this.raise(
        'service',
        `k8s ${name}: reading Service ${name} at ${api.server}: 403 Forbidden: ${detail}; ${matching} instead. ` +
          `Grant this identity get on services in namespace ${this.namespace(api)} to map Service ports to the pods' ports`,
      );
      return;
    }
    this.serviceForbidden = false;
    this.service = read.service;
    this.clear(
      'service',
      `k8s ${name}: reading Service ${name} is allowed again; ports are mapped through it`,
    );
  }

  private async openWatch(api: K8sApi, generation: number): Promise<void> {
    const namespace = this.namespace(api);
    const openedAt = Date.now();
    const token = {};
    this.watchToken = token;
    this.watches++;
    const args = [
      namespace,
      this.target.service,
      this.resourceVersion ?? '',
      (type: WatchEventType, object: unknown) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.onEvent(api, generation, type, object);
      },
      (error: unknown) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.watchToken = undefined;
        this.onWatchEnd(api, generation, error, Date.now() - openedAt);
      },
      this.requests.signal,
    ] as const;
    const watch =
      this.resource() === 'endpoints'
        ? await api.watchEndpoints(...args)
        : await api.watchSlices(...args);
    if (generation !== this.generation || this.watchToken !== token) {
      // Ended (or replaced) while it was opening.
      watch.abort();
      return;
    }
    this.watch = watch;
    this.phase = 'watching';
    this.armIdleTimer(api, generation);
    this.stableTimer = setTimeout(() => {
      this.stableTimer = undefined;
      if (generation !== this.generation || this.watchToken !== token) return;
      // This watch has held: whatever made watches fail is over.
      this.watchBackoff.reset();
      this.shortWatches = 0;
      this.clear(
        'watch',
        `k8s ${this.name(api)}: watching ${RESOURCE_NOUN[this.resource()]} at ${api.server} works again`,
      );
    }, WATCH_STABLE_MS);
    this.stableTimer.unref();
  }

  private armIdleTimer(api: K8sApi, generation: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (generation !== this.generation) return;
      this.raise(
        'watch',
        `k8s ${this.name(api)}: no watch event, bookmark or end for ${WATCH_IDLE_TIMEOUT_MS / 1000} s from ${api.server}: the connection is presumed dead; re-listing`,
      );
      void this.listAndWatch(generation);
    }, WATCH_IDLE_TIMEOUT_MS);
    this.idleTimer.unref();
  }

  private onEvent(api: K8sApi, generation: number, type: WatchEventType, object: unknown): void {
    this.armIdleTimer(api, generation);
    const item = object as {
      metadata?: { name?: string; resourceVersion?: string };
      code?: number;
      message?: string;
    };
    if (type === 'ERROR') {
      if (item.code === 410) {
        void this.listAndWatch(generation);
      } else {
        this.watchFailed(
          Object.assign(new Error(item.message ?? 'watch error'), { code: item.code }),
          api,
          generation,
        );
      }
      return;
    }
    const version = item.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK') return;
    const name = item.metadata?.name;
    if (!name) return;
    if (type === 'DELETED') this.slices.delete(name);
    else this.slices.set(name, this.asSlices(object));
    this.shortWatches = 0;
    // Slices of a Service we have not seen: it was probably created since; read it now.
    if (this.needsService() && this.service === undefined && !this.serviceForbidden) {
      void this.rereadService(api, generation);
    }
    this.publish(api, generation);
  }

  private onWatchEnd(api: K8sApi, generation: number, error: unknown, livedMs: number): void {
    this.watch = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    const status = statusOf(error);
    if (status === 410) {
      void this.listAndWatch(generation);
      return;
    }
    if (
      error !== null &&
      error !== undefined &&
      (error as { name?: string }).name !== 'AbortError'
    ) {
      this.watchFailed(error, api, generation);
      return;
    }
    // The server closed the watch (its timeout, or a restart): reopen from where we were. A watch
    // that keeps ending at once is re-listed after a backoff instead of spinning.
    this.shortWatches = livedMs < SHORT_WATCH_MS ? this.shortWatches + 1 : 0;
    if (this.shortWatches >= 3) {
      this.shortWatches = 0;
      this.retryLater(
        api,
        generation,
        `k8s ${this.name(api)}: watches of ${RESOURCE_NOUN[this.resource()]} at ${api.server} keep ending as soon as they open`,
      );
      return;
    }
    void this.reopen(api, generation);
  }

  /**
   * A watch failed although the list before it succeeded (RBAC with list but not watch, a proxy
   * that refuses long requests, a server going away): keep the listed endpoints, warn once, and
   * list and watch again after the watch backoff, which only a watch that holds resets.
   */
  private watchFailed(error: unknown, api: K8sApi, generation: number): void {
    const failure = describeFailure(
      error,
      this.name(api),
      api.server,
      'watching',
      this.needsService(),
      this.resource(),
      this.target.config?.name,
      this.target.podLabels,
      this.target.istio,
    );
    this.retryLater(api, generation, `k8s: ${failure.message}`);
  }

  private retryLater(api: K8sApi, generation: number, problem: string): void {
    this.phase = 'broken';
    this.closeWatch();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const delay = this.watchBackoff.next();
    this.raise(
      'watch',
      `${problem}; keeping the endpoints listed and listing again with backoff (up to ${WATCH_RETRY_MAX_MS / 1000} s) until a watch holds`,
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.listAndWatch(generation);
    }, delay);
    this.retryTimer.unref();
  }

  /** Reopens the watch from the last resourceVersion, re-reading the Service first when it matters. */
  private async reopen(api: K8sApi, generation: number): Promise<void> {
    try {
      if (this.needsService()) {
        const read = await this.readService(api);
        if (generation !== this.generation) return;
        this.applyServiceRead(api, read);
        this.publish(api, generation);
      }
      await this.openWatch(api, generation);
    } catch (error) {
      if (generation === this.generation) this.watchFailed(error, api, generation);
    }
  }

  /** While the Service is missing or lacks the port, look again every SERVICE_RETRY_MS. */
  private retryServiceLater(api: K8sApi, generation: number): void {
    if (this.serviceTimer) return;
    this.serviceTimer = setTimeout(() => {
      this.serviceTimer = undefined;
      void this.rereadService(api, generation);
    }, SERVICE_RETRY_MS);
    this.serviceTimer.unref();
  }

  /** Reads the Service again (one read at a time) and publishes what it changes. */
  private async rereadService(api: K8sApi, generation: number): Promise<void> {
    if (generation !== this.generation || this.listing || this.serviceReading) return;
    this.serviceReading = true;
    try {
      const read = await this.readService(api);
      if (generation !== this.generation) return;
      this.applyServiceRead(api, read);
      this.publish(api, generation);
    } catch {
      if (generation === this.generation) this.retryServiceLater(api, generation);
    } finally {
      this.serviceReading = false;
    }
  }

  private publish(api: K8sApi, generation: number): void {
    const sink = this.sink;
    if (!sink) return;
    const name = this.name(api);
    let portName: string | undefined;
    if (this.needsService() && !this.serviceForbidden) {
      if (this.service === undefined) {
        this.deliver({ endpoints: [], note: `Service ${name} does not exist (${api.server})` });
        this.retryServiceLater(api, generation);
        return;
      }
      const port = servicePortName(this.target.port, this.service);
      if (port !== undefined && 'error' in port) {
        this.retryServiceLater(api, generation);
        sink.error(new K8sResolutionError(name, `Service ${name}: ${port.error}`, undefined));
        return;
      }
      portName = port?.name;
    } else if (this.target.port.kind === 'name') {
      portName = this.target.port.value;
    }
    const result = endpointsFromSlices(
      [...this.slices.values()].flat(),
      this.target.port,
      portName,
      this.resource() === 'endpoints' ? SUBSET_NOUN : undefined,
    );
    const warnings = new Set(result.warnings.map((w) => `k8s ${name}: ${w}`));
    // Each skipped slice or address is warned about once, not again on every event.
    for (const warning of warnings) if (!this.sliceWarnings.has(warning)) sink.warn(warning);
    this.sliceWarnings = warnings;
    this.deliver({ endpoints: result.endpoints, note: `${result.note} of Service ${name}` });
  }

  /** With `?config=`: starts following the ConfigMap (once per `start()`). */
  private followConfig(api: K8sApi, generation: number): void {
    const ref = this.target.config;
    if (ref === undefined || this.follower !== undefined) return;
    const follower = new ConfigMapFollower(
      this.target.service,
      ref,
      {
        changed: (document) => {
          if (generation !== this.generation) return;
          this.document = document;
          const service = this.name(api);
          if (document.present) {
            this.clear('config', `k8s ${service}: ${document.source} is there again`);
          } else {
            this.raise(
              'config',
              `k8s ${service}: ${document.absence}: no service config from it (the channel's own applies until it appears)`,
            );
          }
          if (this.held) this.deliver(this.held);
        },
        failed: (error) => {
          // Until the document is read, the endpoints wait: a channel never starts on the
          // wrong policy.
          if (generation === this.generation && this.document === undefined) {
            this.sink?.error(error);
          }
        },
        warn: (message) => {
          if (generation === this.generation) this.sink?.warn(message);
        },
      },
      FOLLOWER_TIMINGS,
    );
    this.follower = follower;
    follower.start(api, this.namespace(api));
  }

  /**
   * The Pod labels the endpoints carry: the target's `?pod_labels=`, and the keys the subsets of
   * the Istio config select on (undefined: none).
   */
  private wantedPodKeys(): readonly string[] | undefined {
    const keys = [...(this.target.podLabels ?? [])];
    for (const key of this.istioKeys) if (!keys.includes(key)) keys.push(key);
    return keys.length > 0 ? keys : undefined;
  }

  /**
   * With `?pod_labels=`, or Istio subsets selecting labels: follows the Pods' labels. When the
   * keys change (a DestinationRule's subsets select other labels) the Pods are listed again for
   * the new keys; until then nothing is delivered.
   */
  private followPods(api: K8sApi, generation: number): void {
    const keys = this.wantedPodKeys();
    const same =
      keys !== undefined &&
      this.podKeys !== undefined &&
      keys.length === this.podKeys.length &&
      keys.every((k, i) => this.podKeys?.[i] === k);
    if (same || (keys === undefined && this.podKeys === undefined)) return;
    this.pods?.stop();
    this.pods = undefined;
    this.podKeys = keys;
    if (keys === undefined) return;
    const follower = new PodLabelFollower(
      this.target.service,
      keys,
      {
        changed: (pods) => {
          if (generation !== this.generation || this.held === undefined) return;
          // A relabelled Pod that is none of the endpoints changes nothing.
          if (
            pods !== undefined &&
            !this.held.endpoints.some((e) => pods.has(e.labels?.['pod'] ?? ''))
          ) {
            return;
          }
          this.deliver(this.held);
        },
        failed: (error) => {
          // Until the Pods are listed, the endpoints wait: a channel never starts unlabelled.
          if (generation === this.generation) this.sink?.error(error);
        },
        warn: (message) => {
          if (generation === this.generation) this.sink?.warn(message);
        },
      },
      FOLLOWER_TIMINGS,
    );
    this.pods = follower;
    follower.start(api, this.namespace(api));
  }

  /**
   * With `?istio=true`: starts following the VirtualServices and DestinationRules of the
   * namespace (once per `start()`); networking.istio.io/v1 is read when the API server serves it,
   * else v1beta1 (API discovery, once).
   */
  private followIstio(api: K8sApi, generation: number): void {
    if (!this.target.istio || this.istioFollowers !== undefined) return;
    const discover = (from: K8sApi, signal: AbortSignal): Promise<IstioVersion> => {
      const version = (this.istioVersion ??= from.istioVersion(signal).then((served) => {
        if (served === undefined) throw new IstioNotServedError(from.server);
        return served;
      }));
      // A failed discovery (an outage, CRDs not installed yet) is made again by the next list.
      version.catch(() => {
        if (this.istioVersion === version) this.istioVersion = undefined;
      });
      return version;
    };
    const timings = FOLLOWER_TIMINGS;
    const followers = (['virtualservices', 'destinationrules'] as const).map(
      (kind) =>
        new IstioResourceFollower(
          this.target.service,
          kind,
          discover,
          {
            changed: () => {
              if (generation === this.generation) this.translateIstio(api, generation);
            },
            failed: (error) => {
              // Until both kinds are read, the endpoints wait: a channel never starts on the
              // wrong policy.
              if (generation === this.generation && this.istio === undefined) {
                this.sink?.error(error);
              }
            },
            warn: (message) => {
              if (generation === this.generation) this.sink?.warn(message);
            },
          },
          timings,
        ),
    );
    this.istioFollowers = followers;
    for (const follower of followers) follower.start(api, this.namespace(api));
  }

  /**
   * Translates the VirtualServices and DestinationRules that name the Service (and that Istio's
   * exportTo shows to a client of the namespace) into the service config delivered with the
   * endpoints. A translation that fails keeps the last good config (with a warning), or, with
   * none yet, is an error: nothing is delivered before a usable config or a known absence.
   */
  private translateIstio(api: K8sApi, generation: number): void {
    const followers = this.istioFollowers;
    if (followers === undefined || !followers.every((f) => f.hasRead)) return;
    const namespace = this.namespace(api);
    const service = this.target.service;
    const name = this.name(api);
    const apiVersion = followers[0]?.apiVersion ?? 'networking.istio.io';
    const versions = new Map<string, string>();
    const chosen = followers.map((follower) => {
      const noun = ISTIO_NOUN[follower.kind].one;
      const items: IstioObjectLike[] = [];
      for (const item of follower.items) {
        if (!namesService(follower.kind, item, service, namespace)) continue;
        const shown = `${noun} ${namespace}/${item.metadata?.name ?? ''}`;
        const version = item.metadata?.resourceVersion ?? '?';
        versions.set(shown, version);
        if (!exportedToOwnNamespace(item.spec, namespace)) {
          this.warnIstio(
            `${shown}@${version}`,
            `k8s ${name}: ${shown} (resourceVersion ${version}): its exportTo hides it from clients in namespace ${namespace}: not used`,
          );
          continue;
        }
        items.push(item);
      }
      return items.sort(byCreation);
    });
    const [virtualServices = [], destinationRules = []] = chosen;
    const absent = (why: string): void => {
      const absence = `${why}: no service config from Istio`;
      this.raise('istio', `k8s ${name}: ${absence} (the channel's own applies until one appears)`);
      this.setIstio(api, generation, { present: false, absence }, []);
    };
    if (virtualServices.length === 0 && destinationRules.length === 0) {
      absent(
        `no VirtualService or DestinationRule of namespace ${namespace} names Service ${service}`,
      );
      return;
    }
    let translation: ReturnType<typeof translateIstio>;
    try {
      translation = translateIstio({
        host: `${service}.${namespace}`,
        namespace,
        virtualServices,
        destinationRules,
      });
    } catch (error) {
      if (error instanceof IstioTranslationError && error.code === 'NO_RESOURCE_FOR_HOST') {
        // Only VirtualServices bound to gateways: none applies to mesh clients.
        absent(error.message);
        return;
      }
      const shown = [...versions].map(([r, v]) => `${r} (resourceVersion ${v})`).join(', ');
      const problem = error instanceof Error ? error.message : String(error);
      if (this.istio?.present) {
        this.raise(
          'istio',
          `k8s ${name}: the Istio resources cannot be used (${problem}; read from ${shown}): keeping the last good service config, from ${this.istio.source}`,
        );
        return;
      }
      this.raise('istio', `k8s ${name}: the Istio resources cannot be used`);
      this.sink?.error(
        new K8sResolutionError(
          name,
          redactSecrets(
            `the service config of Service ${name} from its Istio resources (${shown}) cannot be used: ${problem}`,
          ),
          undefined,
          { cause: error },
        ),
      );
      return;
    }
    const source =
      translation.used.map((r) => `${r} (resourceVersion ${versions.get(r) ?? '?'})`).join(', ') +
      ` (${apiVersion})`;
    this.clear('istio', `k8s ${name}: service config from ${source}`);
    for (const warning of translation.warnings) {
      const resource = [...versions.keys()].find((r) => warning.startsWith(`${r}:`));
      const version = resource !== undefined ? versions.get(resource) : undefined;
      this.warnIstio(`${resource ?? ''}@${version ?? ''}: ${warning}`, `k8s ${name}: ${warning}`);
    }
    this.setIstio(
      api,
      generation,
      { present: true, config: translation.serviceConfig, source },
      subsetLabelKeys(translation.serviceConfig),
    );
  }

  /** Gives an Istio warning once per version of the resource it is about. */
  private warnIstio(key: string, text: string): void {
    if (this.istioWarned.has(key)) return;
    this.istioWarned.add(key);
    this.sink?.warn(text);
  }

  /** The Istio config changed: follows the labels its subsets select on, and delivers it. */
  private setIstio(api: K8sApi, generation: number, istio: IstioConfig, keys: string[]): void {
    this.istio = istio;
    this.istioKeys = keys;
    this.followPods(api, generation);
    if (this.held) this.deliver(this.held);
  }

  /**
   * Each endpoint whose slice entry names a Pod, with that Pod's requested labels: the resolver's
   * own `node` and `pod` win over them, and they win over the slice's labels.
   */
  private withPodLabels(resolution: Resolution, pods: PodLabelFollower): Resolution {
    let labelled = 0;
    const endpoints = resolution.endpoints.map((endpoint) => {
      const pod = endpoint.labels?.['pod'];
      const extra = pod !== undefined ? pods.labelsOf(pod) : undefined;
      if (pod === undefined || extra === undefined) return endpoint;
      labelled++;
      const node = endpoint.labels?.['node'];
      return {
        ...endpoint,
        labels: { ...endpoint.labels, ...extra, pod, ...(node !== undefined ? { node } : {}) },
      };
    });
    const keys = this.podKeys?.join(',') ?? '';
    return {
      ...resolution,
      endpoints,
      note: `${resolution.note ?? ''}; ${labelled} of ${endpoints.length} labelled from their Pods (pod_labels=${keys})`,
    };
  }

  /**
   * Sends the endpoints, with their Pods' labels when the target asks for them and the ConfigMap's
   * document when it follows one: then nothing is sent before the Pods' first list and the
   * document's first read, and every resolution carries both.
   */
  private deliver(held: Resolution): void {
    this.held = held;
    const sink = this.sink;
    if (!sink) return;
    if (this.target.istio && this.istio === undefined) return;
    let resolution = held;
    if (this.podKeys !== undefined) {
      if (this.pods === undefined || !this.pods.hasRead) return;
      resolution = this.withPodLabels(held, this.pods);
    }
    if (this.target.istio) {
      const istio = this.istio!;
      sink.update(
        istio.present
          ? {
              ...resolution,
              serviceConfig: istio.config,
              serviceConfigSource: istio.source,
              note: `${resolution.note ?? ''}; service config from ${istio.source}`,
            }
          : { ...resolution, note: `${resolution.note ?? ''}; ${istio.absence}` },
      );
      return;
    }
    if (this.target.config === undefined) {
      sink.update(resolution);
      return;
    }
    const document = this.document;
    if (document === undefined) return;
    sink.update(
      document.present
        ? {
            ...resolution,
            serviceConfig: document.text,
            serviceConfigSource: document.source,
            note: `${resolution.note ?? ''}; service config from ${document.source}`,
          }
        : {
            ...resolution,
            note: `${resolution.note ?? ''}; ${document.absence}: no service config from it`,
          },
    );
  }

  private fail(
    error: unknown,
    api: K8sApi | undefined,
    doing: 'listing' | 'watching',
    resource: K8sResource,
  ): void {
    this.phase = 'broken';
    this.closeWatch();
    const sink = this.sink;
    if (!sink) return;
    const namespace = api ? this.namespace(api) : (this.target.namespace ?? '(default)');
    const name = `${namespace}/${this.target.service}`;
    sink.error(
      describeFailure(
        error,
        name,
        api?.server,
        doing,
        this.target.port.kind !== 'name',
        resource,
        this.target.config?.name,
        this.target.podLabels,
        this.target.istio,
      ),
    );
  }
}

/**
 * A K8sResolutionError saying what failed, why, and (for 401/403) what to do about it. With
 * `configMap` (the target's `?config=`), `podLabels` (its `?pod_labels=`) or `istio` (its
 * `?istio=true`), a 403 also names the ConfigMap, Pod or Istio rules the target needs, so that
 * every grant is made at once.
 */
export function describeFailure(
  error: unknown,
  name: string,
  server: string | undefined,
  doing: 'listing' | 'watching',
  needsService: boolean,
  resource: K8sResource = 'endpointslices',
  configMap?: string,
  podLabels?: readonly string[],
  istio?: boolean,
): Error {
  if (!server) return error instanceof Error ? error : new Error(String(error));
  const status = statusOf(error);
  const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const what = `${doing} ${RESOURCE_NOUN[resource]} of Service ${name} at ${server}`;
  const [namespace] = name.split('/');
  let message: string;
  if (status === 403) {
    const grant =
      resource === 'endpoints'
        ? 'endpoints (the core apiGroup "")'
        : 'endpointslices (apiGroup discovery.k8s.io)';
    message =
      `${what}: 403 Forbidden: ${detail}. Grant this identity list and watch on ` +
      `${grant}${needsService ? ' and get on services' : ''} ` +
      `in namespace ${namespace} (a Role and a RoleBinding)` +
      (resource === 'either' ? '; listing its core/v1 Endpoints instead was refused too' : '') +
      (configMap !== undefined
        ? `; its service config (?config=${configMap}) also needs get, list and watch on configmaps (the core apiGroup "") in that namespace`
        : '') +
      (podLabels !== undefined
        ? `; its Pod labels (?pod_labels=${podLabels.join(',')}) also need list and watch on pods (the core apiGroup "") in that namespace`
        : '') +
      (istio
        ? `; its service config (?istio=true) also needs ${ISTIO_RULE}, and list and watch on pods (the core apiGroup "") for the labels its subsets select, in that namespace`
        : '');
  } else if (status === 401) {
    message = `${what}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`;
  } else if (status !== undefined) {
    message = `${what}: ${status}: ${detail}`;
  } else {
    message = `${what}: ${detail}`;
  }
  // A transport error can quote a URL with credentials in it.
  return new K8sResolutionError(name, redactSecrets(message), status, { cause: error });
}
