import type { EndpointResolver, ResolutionSink } from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import {
  statusMessage,
  statusOf,
  type K8sApi,
  type K8sConnectionOptions,
  type WatchEventType,
} from './k8s-client';
import type { K8sTarget } from './k8s-target';
import { endpointsFromSlices, servicePortName, type ServiceLike, type SliceLike } from './slices';

/** A watch that ends sooner than this after opening, repeatedly, is re-listed after a pause. */
const SHORT_WATCH_MS = 1_000;
/** No event (bookmarks included) for this long: the watch is presumed dead and replaced. */
export const WATCH_IDLE_TIMEOUT_MS = 5 * 60_000;

export interface K8sResolverState {
  /** 'idle' before start/after stop; 'listing'; 'watching'; 'broken' after an error (waits for refresh). */
  readonly phase: 'idle' | 'listing' | 'watching' | 'broken';
  readonly resourceVersion: string | undefined;
  readonly slices: number;
  /** Lists made since start (1 + re-lists after 410 Gone, errors and refreshes). */
  readonly lists: number;
  /** Watches opened since start. */
  readonly watches: number;
}

/**
 * Every EndpointSlice of one Service, listed then watched from the list's resourceVersion, merged
 * by slice name. A watch the server ends is reopened from the last resourceVersion; 410 Gone
 * (the version was compacted) re-lists; any other failure is reported to the sink (the channel
 * keeps its last good endpoints) and the next `refresh()` re-lists.
 */
export class K8sEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  private generation = 0;
  private phase: K8sResolverState['phase'] = 'idle';
  private slices = new Map<string, SliceLike>();
  private service: ServiceLike | undefined;
  private resourceVersion: string | undefined;
  private watch: { abort(): void } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private pauseTimer: NodeJS.Timeout | undefined;
  private shortWatches = 0;
  private lists = 0;
  private watches = 0;
  private api: Promise<K8sApi> | undefined;

  constructor(
    private readonly target: K8sTarget,
    private readonly connection: K8sConnectionOptions,
    private readonly createApi: (options: K8sConnectionOptions) => Promise<K8sApi>,
  ) {}

  state(): K8sResolverState {
    return {
      phase: this.phase,
      resourceVersion: this.resourceVersion,
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
    void this.listAndWatch(this.generation);
  }

  refresh(): void {
    if (this.phase === 'broken') void this.listAndWatch(this.generation);
  }

  stop(): void {
    this.generation++;
    this.sink = undefined;
    this.phase = 'idle';
    this.closeWatch();
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    this.slices = new Map();
    this.service = undefined;
    this.resourceVersion = undefined;
    this.shortWatches = 0;
  }

  private closeWatch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const watch = this.watch;
    this.watch = undefined;
    watch?.abort();
  }

  private namespace(api: K8sApi): string {
    return this.target.namespace ?? api.defaultNamespace;
  }

  private async listAndWatch(generation: number): Promise<void> {
    if (generation !== this.generation || this.phase === 'listing') return;
    this.phase = 'listing';
    this.closeWatch();
    this.lists++;
    let api: K8sApi | undefined;
    try {
      this.api ??= this.createApi(this.connection);
      api = await this.api;
      const namespace = this.namespace(api);
      const needService = this.target.port.kind !== 'name';
      const [list, service] = await Promise.all([
        api.listSlices(namespace, this.target.service),
        needService ? api.readService(namespace, this.target.service) : undefined,
      ]);
      if (generation !== this.generation) return;
      this.service = service;
      this.slices = new Map(list.items.map((s, i) => [s.metadata?.name ?? `#${i}`, s]));
      this.resourceVersion = list.resourceVersion;
      this.publish(api);
      await this.openWatch(api, generation);
    } catch (error) {
      if (generation !== this.generation) return;
      // A failed config (no kubeconfig) is not retried with the same promise.
      if (api === undefined) this.api = undefined;
      this.fail(error, api, 'listing');
    }
  }

  private async openWatch(api: K8sApi, generation: number): Promise<void> {
    const namespace = this.namespace(api);
    const openedAt = Date.now();
    let ended = false;
    this.watches++;
    const watch = await api.watchSlices(
      namespace,
      this.target.service,
      this.resourceVersion ?? '',
      (type, object) => {
        if (generation !== this.generation || ended) return;
        this.onEvent(api, generation, type, object);
      },
      (error) => {
        if (generation !== this.generation || ended) return;
        ended = true;
        this.onWatchEnd(api, generation, error, Date.now() - openedAt);
      },
    );
    if (generation !== this.generation || ended) {
      watch.abort();
      return;
    }
    this.watch = watch;
    this.phase = 'watching';
    this.armIdleTimer(api, generation);
  }

  private armIdleTimer(api: K8sApi, generation: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (generation !== this.generation) return;
      this.sink?.warn(
        `k8s: no watch event for ${WATCH_IDLE_TIMEOUT_MS / 1000} s from ${api.server}; re-listing`,
      );
      void this.listAndWatch(generation);
    }, WATCH_IDLE_TIMEOUT_MS);
    this.idleTimer.unref();
  }

  private onEvent(api: K8sApi, generation: number, type: WatchEventType, object: unknown): void {
    this.armIdleTimer(api, generation);
    const slice = object as SliceLike & { code?: number; message?: string };
    if (type === 'ERROR') {
      if (slice.code === 410) {
        void this.listAndWatch(generation);
      } else {
        this.closeWatch();
        this.fail(
          Object.assign(new Error(slice.message ?? 'watch error'), { code: slice.code }),
          api,
          'watching',
        );
      }
      return;
    }
    const version = slice.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK') return;
    const name = slice.metadata?.name;
    if (!name) return;
    if (type === 'DELETED') this.slices.delete(name);
    else this.slices.set(name, slice);
    this.shortWatches = 0;
    this.publish(api);
  }

  private onWatchEnd(api: K8sApi, generation: number, error: unknown, livedMs: number): void {
    this.watch = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
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
      this.fail(error, api, 'watching');
      return;
    }
    // The server closed the watch (its timeout, or a restart): reopen from where we were. A watch
    // that keeps ending at once is re-listed after a pause instead of spinning.
    this.shortWatches = livedMs < SHORT_WATCH_MS ? this.shortWatches + 1 : 0;
    if (this.shortWatches >= 3) {
      this.shortWatches = 0;
      this.phase = 'broken';
      this.pauseTimer = setTimeout(() => void this.listAndWatch(generation), 1_000);
      this.pauseTimer.unref();
      return;
    }
    this.openWatch(api, generation).catch((e: unknown) => {
      if (generation === this.generation) this.fail(e, api, 'watching');
    });
  }

  private publish(api: K8sApi): void {
    const sink = this.sink;
    if (!sink) return;
    const namespace = this.namespace(api);
    const name = `${namespace}/${this.target.service}`;
    const needService = this.target.port.kind !== 'name';
    if (needService && this.service === undefined) {
      sink.update({ endpoints: [], note: `Service ${name} does not exist (${api.server})` });
      return;
    }
    const port = servicePortName(this.target.port, this.service);
    if (port !== undefined && 'error' in port) {
      sink.error(new K8sResolutionError(name, `Service ${name}: ${port.error}`, undefined));
      return;
    }
    const result = endpointsFromSlices(this.slices.values(), this.target.port, port?.name);
    for (const warning of result.warnings) sink.warn(`k8s ${name}: ${warning}`);
    sink.update({ endpoints: result.endpoints, note: `${result.note} of Service ${name}` });
  }

  private fail(error: unknown, api: K8sApi | undefined, doing: 'listing' | 'watching'): void {
    this.phase = 'broken';
    this.closeWatch();
    const sink = this.sink;
    if (!sink) return;
    const namespace = api ? this.namespace(api) : (this.target.namespace ?? '(default)');
    const name = `${namespace}/${this.target.service}`;
    sink.error(describeFailure(error, name, api?.server, doing, this.target.port.kind !== 'name'));
  }
}

/** A K8sResolutionError saying what failed, why, and (for 401/403) what to do about it. */
export function describeFailure(
  error: unknown,
  name: string,
  server: string | undefined,
  doing: 'listing' | 'watching',
  needsService: boolean,
): Error {
  if (!server) return error instanceof Error ? error : new Error(String(error));
  const status = statusOf(error);
  const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const what = `${doing} EndpointSlices of Service ${name} at ${server}`;
  const [namespace] = name.split('/');
  let message: string;
  if (status === 403) {
    message =
      `${what}: 403 Forbidden: ${detail}. Grant this identity list and watch on ` +
      `endpointslices (apiGroup discovery.k8s.io)${needsService ? ' and get on services' : ''} ` +
      `in namespace ${namespace} (a Role and a RoleBinding)`;
  } else if (status === 401) {
    message = `${what}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`;
  } else if (status !== undefined) {
    message = `${what}: ${status}: ${detail}`;
  } else {
    message = `${what}: ${detail}`;
  }
  return new K8sResolutionError(name, message, status, { cause: error });
}
