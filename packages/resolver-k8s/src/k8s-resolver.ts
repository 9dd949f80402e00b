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
/** While the Service is missing (or lacks the port), it is looked for again this often. */
export const SERVICE_RETRY_MS = 5_000;

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
  /** The watch whose callbacks count; cleared when we close it, so its own AbortError is ignored. */
  private watchToken: object | undefined;
  private listing = false;
  private relistRequested = false;
  private serviceReading = false;
  private serviceTimer: NodeJS.Timeout | undefined;
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
    this.listing = false;
    this.relistRequested = false;
    this.serviceReading = false;
    this.closeWatch();
    this.clearRetryTimers();
    this.slices = new Map();
    this.service = undefined;
    this.resourceVersion = undefined;
    this.shortWatches = 0;
  }

  private closeWatch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.watchToken = undefined;
    const watch = this.watch;
    this.watch = undefined;
    watch?.abort();
  }

  private clearRetryTimers(): void {
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    if (this.serviceTimer) clearTimeout(this.serviceTimer);
    this.serviceTimer = undefined;
  }

  private namespace(api: K8sApi): string {
    return this.target.namespace ?? api.defaultNamespace;
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
      const namespace = this.namespace(api);
      const [list, service] = await Promise.all([
        api.listSlices(namespace, this.target.service),
        this.needsService() ? api.readService(namespace, this.target.service) : undefined,
      ]);
      if (generation !== this.generation) return;
      this.service = service;
      this.slices = new Map(list.items.map((s, i) => [s.metadata?.name ?? `#${i}`, s]));
      this.resourceVersion = list.resourceVersion;
      this.publish(api, generation);
      try {
        await this.openWatch(api, generation);
      } catch (error) {
        if (generation === this.generation) this.fail(error, api, 'watching');
      }
    } catch (error) {
      if (generation !== this.generation) return;
      // A failed config (no kubeconfig) is not retried with the same promise.
      if (api === undefined) this.api = undefined;
      this.fail(error, api, 'listing');
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

  private needsService(): boolean {
    return this.target.port.kind !== 'name';
  }

  private async openWatch(api: K8sApi, generation: number): Promise<void> {
    const namespace = this.namespace(api);
    const openedAt = Date.now();
    const token = {};
    this.watchToken = token;
    this.watches++;
    const watch = await api.watchSlices(
      namespace,
      this.target.service,
      this.resourceVersion ?? '',
      (type, object) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.onEvent(api, generation, type, object);
      },
      (error) => {
        if (generation !== this.generation || this.watchToken !== token) return;
        this.watchToken = undefined;
        this.onWatchEnd(api, generation, error, Date.now() - openedAt);
      },
    );
    if (generation !== this.generation || this.watchToken !== token) {
      // Ended (or replaced) while it was opening.
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
    // Slices of a Service we have not seen: it was probably created since; read it now.
    if (this.needsService() && this.service === undefined) void this.rereadService(api, generation);
    this.publish(api, generation);
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
    void this.reopen(api, generation);
  }

  /** Reopens the watch from the last resourceVersion, re-reading the Service first when it matters. */
  private async reopen(api: K8sApi, generation: number): Promise<void> {
    try {
      if (this.needsService()) {
        const service = await api.readService(this.namespace(api), this.target.service);
        if (generation !== this.generation) return;
        this.service = service;
        this.publish(api, generation);
      }
      await this.openWatch(api, generation);
    } catch (error) {
      if (generation === this.generation) this.fail(error, api, 'watching');
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
      const service = await api.readService(this.namespace(api), this.target.service);
      if (generation !== this.generation) return;
      this.service = service;
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
    const namespace = this.namespace(api);
    const name = `${namespace}/${this.target.service}`;
    if (this.needsService() && this.service === undefined) {
      sink.update({ endpoints: [], note: `Service ${name} does not exist (${api.server})` });
      this.retryServiceLater(api, generation);
      return;
    }
    const port = servicePortName(this.target.port, this.service);
    if (port !== undefined && 'error' in port) {
      this.retryServiceLater(api, generation);
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
