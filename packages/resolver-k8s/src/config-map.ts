import { Backoff, redactSecrets } from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import {
  statusMessage,
  statusOf,
  type ConfigMapLike,
  type K8sApi,
  type WatchEventType,
} from './k8s-client';
import type { K8sConfigMapRef } from './k8s-target';

/** What the followed ConfigMap holds now. */
export type ConfigDocument =
  | {
      readonly present: true;
      /** The data key's text, exactly as stored. */
      readonly text: string;
      /** `ConfigMap prod/hello-lb service-config.json (resourceVersion 42)`. */
      readonly source: string;
    }
  | {
      readonly present: false;
      /** Which document is missing: `ConfigMap prod/hello-lb does not exist`. */
      readonly absence: string;
    };

export interface ConfigMapFollowerEvents {
  /** The document was read for the first time, or changed (a write, a deletion). */
  changed(document: ConfigDocument): void;
  /** Reading failed and no read has succeeded yet (a 403 names the rule to grant). */
  failed(error: Error): void;
  /** A lasting problem after a good read (the last document is kept), or its end. */
  warn(message: string): void;
}

/** Timings shared with the EndpointSlice watch (see k8s-resolver.ts). */
export interface ConfigMapFollowerTimings {
  readonly shortWatchMs: number;
  readonly watchIdleTimeoutMs: number;
  readonly watchStableMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

/**
 * Follows one ConfigMap data key: lists the ConfigMap (`fieldSelector=metadata.name=<name>`),
 * then watches it from the list's resourceVersion, as the EndpointSlices are followed. A watch
 * the server ends is reopened from the last resourceVersion; 410 Gone re-lists; a watch silent
 * for longer than the server's own timeout is presumed dead and replaced. A list or watch failure
 * keeps the last document read and retries after a jittered, growing backoff, which only a watch
 * that holds resets; until a first read succeeds, each failure is reported by `failed`.
 */
export class ConfigMapFollower {
  private generation = 0;
  private api: K8sApi | undefined;
  private namespace = '';
  private resourceVersion = '';
  private document: ConfigDocument | undefined;
  private listing = false;
  private relistRequested = false;
  private watch: { abort(): void } | undefined;
  private watchToken: object | undefined;
  private requests = new AbortController();
  private idleTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private shortWatches = 0;
  private readonly backoff: Backoff;
  /** The lasting problem warned about (said once, and again when it clears). */
  private trouble: string | undefined;

  constructor(
    /** The Service the document is for (`K8sResolutionError.service`): its name, without namespace. */
    private readonly service: string,
    private readonly ref: K8sConfigMapRef,
    private readonly events: ConfigMapFollowerEvents,
    private readonly timings: ConfigMapFollowerTimings,
  ) {
    this.backoff = new Backoff({ initialMs: timings.retryInitialMs, maxMs: timings.retryMaxMs });
  }

  /** `namespace/name`. */
  private get name(): string {
    return `${this.namespace}/${this.ref.name}`;
  }

  start(api: K8sApi, namespace: string): void {
    this.stop();
    this.api = api;
    this.namespace = namespace;
    this.requests = new AbortController();
    void this.listAndWatch(this.generation);
  }

  /** Before a first good read: lists again now if the last attempt failed and nothing is under way. */
  refresh(): void {
    if (this.api === undefined || this.document !== undefined) return;
    if (this.listing || this.watch !== undefined) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.listAndWatch(this.generation);
  }

  stop(): void {
    this.generation++;
    this.api = undefined;
    this.requests.abort();
    this.closeWatch();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.listing = false;
    this.relistRequested = false;
    this.document = undefined;
    this.resourceVersion = '';
    this.shortWatches = 0;
    this.trouble = undefined;
    this.backoff.reset();
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

  private async listAndWatch(generation: number): Promise<void> {
    const api = this.api;
    if (generation !== this.generation || api === undefined) return;
    if (this.listing) {
      this.relistRequested = true;
      return;
    }
    this.listing = true;
    this.closeWatch();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      let list: { items: ConfigMapLike[]; resourceVersion: string };
      try {
        list = await api.listConfigMaps(this.namespace, this.ref.name, this.requests.signal);
      } catch (error) {
        if (generation === this.generation) this.failed(error, api, 'listing', generation);
        return;
      }
      if (generation !== this.generation) return;
      this.resourceVersion = list.resourceVersion;
      const item = list.items.find((i) => i.metadata?.name === this.ref.name);
      this.set(this.documentOf(item));
      try {
        await this.openWatch(api, generation);
      } catch (error) {
        if (generation === this.generation) this.failed(error, api, 'watching', generation);
      }
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

  /** The document a ConfigMap (undefined: none) holds. */
  private documentOf(item: ConfigMapLike | undefined): ConfigDocument {
    const name = this.name;
    if (item === undefined) {
      return { present: false, absence: `ConfigMap ${name} does not exist` };
    }
    const version = item.metadata?.resourceVersion ?? this.resourceVersion;
    const source = `ConfigMap ${name} ${this.ref.key} (resourceVersion ${version})`;
    const text = item.data?.[this.ref.key];
    if (typeof text === 'string') return { present: true, text, source };
    const binary = item.binaryData?.[this.ref.key];
    if (typeof binary === 'string') {
      return { present: true, text: Buffer.from(binary, 'base64').toString('utf8'), source };
    }
    return { present: false, absence: `ConfigMap ${name} has no data key "${this.ref.key}"` };
  }

  private set(document: ConfigDocument): void {
    const before = this.document;
    this.document = document;
    if (
      before !== undefined &&
      before.present === document.present &&
      (document.present
        ? before.present && before.text === document.text && before.source === document.source
        : !before.present && before.absence === document.absence)
    ) {
      return;
    }
    this.events.changed(document);
  }

  private async openWatch(api: K8sApi, generation: number): Promise<void> {
    const openedAt = Date.now();
    const token = {};
    this.watchToken = token;
    const watch = await api.watchConfigMaps(
      this.namespace,
      this.ref.name,
      this.resourceVersion,
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
    );
    if (generation !== this.generation || this.watchToken !== token) {
      watch.abort();
      return;
    }
    this.watch = watch;
    this.armIdleTimer(generation);
    this.stableTimer = setTimeout(() => {
      this.stableTimer = undefined;
      if (generation !== this.generation || this.watchToken !== token) return;
      this.backoff.reset();
      this.shortWatches = 0;
      this.clearTrouble(`k8s ConfigMap ${this.name}: watching it at ${api.server} works again`);
    }, this.timings.watchStableMs);
    this.stableTimer.unref();
  }

  private armIdleTimer(generation: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (generation !== this.generation) return;
      this.raise(
        `k8s ConfigMap ${this.name}: no watch event, bookmark or end for ${this.timings.watchIdleTimeoutMs / 1000} s: the connection is presumed dead; re-listing`,
      );
      void this.listAndWatch(generation);
    }, this.timings.watchIdleTimeoutMs);
    this.idleTimer.unref();
  }

  private onEvent(api: K8sApi, generation: number, type: WatchEventType, object: unknown): void {
    this.armIdleTimer(generation);
    const item = object as ConfigMapLike & { code?: number; message?: string };
    if (type === 'ERROR') {
      if (item.code === 410) void this.listAndWatch(generation);
      else {
        this.failed(
          Object.assign(new Error(item.message ?? 'watch error'), { code: item.code }),
          api,
          'watching',
          generation,
        );
      }
      return;
    }
    const version = item.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK' || item.metadata?.name !== this.ref.name) return;
    this.shortWatches = 0;
    this.set(this.documentOf(type === 'DELETED' ? undefined : item));
  }

  private onWatchEnd(api: K8sApi, generation: number, error: unknown, livedMs: number): void {
    this.watch = undefined;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    if (statusOf(error) === 410) {
      void this.listAndWatch(generation);
      return;
    }
    if (
      error !== null &&
      error !== undefined &&
      (error as { name?: string }).name !== 'AbortError'
    ) {
      this.failed(error, api, 'watching', generation);
      return;
    }
    this.shortWatches = livedMs < this.timings.shortWatchMs ? this.shortWatches + 1 : 0;
    if (this.shortWatches >= 3) {
      this.shortWatches = 0;
      this.retryLater(
        generation,
        `k8s ConfigMap ${this.name}: watches at ${api.server} keep ending as soon as they open`,
      );
      return;
    }
    this.openWatch(api, generation).catch((failure: unknown) => {
      if (generation === this.generation) this.failed(failure, api, 'watching', generation);
    });
  }

  /**
   * A list or watch failed: before any good read, `failed` reports it (the channel must not start
   * without its policy); after one, the last document is kept and a warning says so once. Either
   * way the ConfigMap is listed again after the backoff.
   */
  private failed(
    error: unknown,
    api: K8sApi,
    doing: 'listing' | 'watching',
    generation: number,
  ): void {
    const failure = describeConfigMapFailure(
      error,
      `${this.namespace}/${this.service}`,
      this.ref,
      api.server,
      doing,
    );
    if (this.document === undefined) {
      this.closeWatch();
      this.events.failed(failure);
      this.scheduleRetry(generation);
      return;
    }
    this.retryLater(generation, `k8s: ${failure.message}`);
  }

  private retryLater(generation: number, problem: string): void {
    this.closeWatch();
    this.raise(
      `${problem}; keeping its last document and listing it again with backoff (up to ${this.timings.retryMaxMs / 1000} s) until a watch holds`,
    );
    this.scheduleRetry(generation);
  }

  private scheduleRetry(generation: number): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.listAndWatch(generation);
    }, this.backoff.next());
    this.retryTimer.unref();
  }

  private raise(text: string): void {
    if (this.trouble === text) return;
    this.trouble = text;
    this.events.warn(text);
  }

  private clearTrouble(text: string): void {
    if (this.trouble === undefined) return;
    this.trouble = undefined;
    this.events.warn(text);
  }
}

/**
 * A K8sResolutionError naming the ConfigMap, what failed and, for a 403, the RBAC rule to grant.
 * The resolver lists and watches the one ConfigMap with `fieldSelector=metadata.name=<name>`, so
 * a rule with `resourceNames: [<name>]` is enough.
 */
export function describeConfigMapFailure(
  error: unknown,
  service: string,
  ref: K8sConfigMapRef,
  server: string,
  doing: 'listing' | 'watching',
): K8sResolutionError {
  const status = statusOf(error);
  const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const [namespace] = service.split('/');
  const name = `${namespace}/${ref.name}`;
  const what = `${doing} ConfigMap ${name} (service config key "${ref.key}") at ${server}`;
  let message: string;
  if (status === 403) {
    message =
      `${what}: 403 Forbidden: ${detail}. Grant this identity get, list and watch on configmaps ` +
      `(the core apiGroup "") in namespace ${namespace} (a Role and a RoleBinding; ` +
      `resourceNames: ["${ref.name}"] may restrict the rule to this ConfigMap, which is listed ` +
      `and watched with the field selector metadata.name=${ref.name})`;
  } else if (status === 401) {
    message = `${what}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`;
  } else if (status !== undefined) {
    message = `${what}: ${status}: ${detail}`;
  } else {
    message = `${what}: ${detail}`;
  }
  return new K8sResolutionError(service, redactSecrets(message), status, { cause: error });
}
