import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, redactSecrets } from '@grpc-lb/core';
import type * as ClientNode from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { kubeconfigError } from './kubeconfig-error';
import type { EndpointsLike } from './endpoints';
import type { ServiceLike, SliceLike } from './slices';

/** Where the pod's service account is mounted (token, ca.crt, namespace). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How the resolver finds and authenticates to the API server. */
export interface K8sConnectionOptions {
  /**
   * A kubeconfig file. Default: `$KUBECONFIG` (its first file), else the pod's service account when
   * `KUBERNETES_SERVICE_HOST` is set (in-cluster), else `~/.kube/config`.
   */
  readonly kubeconfig?: string;
  /** The kubeconfig context to use (default: its current context). */
  readonly context?: string;
  /**
   * For tests and unusual mounts: a prefix for the in-cluster service-account paths (the token is
   * read from `<prefix>/var/run/secrets/kubernetes.io/serviceaccount/token`, re-read as it rotates).
   */
  readonly inClusterPathPrefix?: string;
  /** The namespace of targets that name none (default: the context's, else the pod's, else `default`). */
  readonly namespace?: string;
  /** Bound on each list/get request and on opening a watch (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/**
 * The server is asked to end each watch after about this long (jittered by up to 5 s either way so
 * that many clients do not reopen together); the resolver then reopens it from the last
 * resourceVersion, without a list. A watch that neither delivers an event or bookmark nor ends
 * well after this is a dead connection.
 */
export const WATCH_TIMEOUT_SECONDS = 45;

/**
 * The calls the resolver makes (EndpointSlices, or core/v1 Endpoints where slices are not
 * available, and the Service); one implementation on `@kubernetes/client-node`. `signal`
 * aborts a request in flight (the resolver's `stop()`); each request is also aborted, socket
 * included, when it has no answer within `requestTimeoutMs`.
 */
export interface K8sApi {
  /** The API server URL, for messages. */
  readonly server: string;
  readonly defaultNamespace: string;
  listSlices(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<{ items: SliceLike[]; resourceVersion: string }>;
  /** The Service, or undefined when it does not exist. */
  readService(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<ServiceLike | undefined>;
  /**
   * Opens a watch (with bookmarks, ended by the server after about WATCH_TIMEOUT_SECONDS); `done`
   * is called once when it ends (`null`: the server closed it). `signal` abandons a watch that
   * is still opening.
   */
  watchSlices(
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
  /** The Service's core/v1 Endpoints object (named after it): zero or one item. */
  listEndpoints(
    namespace: string,
    service: string,
    signal?: AbortSignal,
  ): Promise<{ items: EndpointsLike[]; resourceVersion: string }>;
  /** As `watchSlices`, on the Service's Endpoints object. */
  watchEndpoints(
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
  /**
   * The ConfigMap called `name` (`fieldSelector=metadata.name=<name>`, so that an RBAC rule with
   * `resourceNames: [name]` allows it): zero or one item.
   */
  listConfigMaps(
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<{ items: ConfigMapLike[]; resourceVersion: string }>;
  /** As `watchSlices`, on the ConfigMap called `name`. */
  watchConfigMaps(
    namespace: string,
    name: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
  /** The Pods of the namespace (paged), narrowed by `labelSelector` when given. */
  listPods(
    namespace: string,
    labelSelector: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ items: PodLike[]; resourceVersion: string }>;
  /** As `watchSlices`, on the Pods of the namespace (narrowed by `labelSelector` when given). */
  watchPods(
    namespace: string,
    labelSelector: string | undefined,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
  /**
   * Which version of networking.istio.io the API server serves (API discovery): `v1` when served,
   * else `v1beta1`; undefined when neither is (the Istio CRDs are not installed).
   */
  istioVersion(signal?: AbortSignal): Promise<IstioVersion | undefined>;
  /** The VirtualServices or DestinationRules of the namespace (paged). */
  listIstio(
    kind: IstioKind,
    version: IstioVersion,
    namespace: string,
    signal?: AbortSignal,
  ): Promise<{ items: IstioObjectLike[]; resourceVersion: string }>;
  /** As `watchSlices`, on the VirtualServices or DestinationRules of the namespace. */
  watchIstio(
    kind: IstioKind,
    version: IstioVersion,
    namespace: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
  /** The labels of Node `name` (cluster-scoped; RBAC `get` on `nodes`), undefined if it does not exist. */
  readNodeLabels?(
    name: string,
    signal?: AbortSignal,
  ): Promise<Readonly<Record<string, string>> | undefined>;
}

/** The Istio resources the resolver follows with `?istio=true` (group networking.istio.io). */
export type IstioKind = 'virtualservices' | 'destinationrules';

/** The networking.istio.io versions the resolver reads, preferred first. */
export type IstioVersion = 'v1' | 'v1beta1';

/** The API group of VirtualServices and DestinationRules. */
export const ISTIO_GROUP = 'networking.istio.io';

/** An Istio resource as listed or watched: read by `translateIstio` from `@grpc-lb/istio`. */
export interface IstioObjectLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly resourceVersion?: string;
    readonly creationTimestamp?: string;
  };
  readonly spec?: unknown;
}

/** The parts of a Pod the resolver reads: its name and labels. */
export interface PodLike {
  readonly metadata?: {
    readonly name?: string;
    readonly resourceVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
}

/** The parts of a ConfigMap the resolver reads. */
export interface ConfigMapLike {
  readonly metadata?: { readonly name?: string; readonly resourceVersion?: string };
  readonly data?: Readonly<Record<string, string>>;
  readonly binaryData?: Readonly<Record<string, string>>;
}

type ClientNodeModule = typeof ClientNode;
let clientNode: Promise<ClientNodeModule> | undefined;

/**
 * `@kubernetes/client-node` 1.x is ESM only: imported once, as soon as a resolver factory that
 * uses it is made (`registerK8s()`), so that the first target does not wait for it.
 */
function loadClientNode(): Promise<ClientNodeModule> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
}

/** Starts importing `@kubernetes/client-node` now; a failure is reported by the first resolution. */
export function preloadClientNode(): void {
  loadClientNode().catch(() => undefined);
}

/** For tests: whether the import of `@kubernetes/client-node` has started. */
export function clientNodeRequested(): boolean {
  return clientNode !== undefined;
}

/** The label every EndpointSlice of a Service carries. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The HTTP status in an error from client-node (ApiException `code`, watch `statusCode`). */
export function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'number') return code;
  if (typeof statusCode === 'number') return statusCode;
  return undefined;
}

/** The Status message of an API error body (`… is forbidden: User "x" cannot list …`). */
export function statusMessage(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const body = (error as { body?: unknown }).body;
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const message = (parsed as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

/**
 * Runs one request under an AbortSignal that fires when `outer` does or after `ms` (then the
 * request fails with "<what>: no answer in <ms> ms"); either way the request and its socket are
 * torn down, not left to finish in the background.
 */
async function bounded<T>(
  ms: number,
  what: string,
  outer: AbortSignal | undefined,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const aborted = new Promise<never>((_, reject) => {
    const onAborted = (): void => {
      const reason: unknown = controller.signal.reason;
      reject(reason instanceof Error ? reason : new Error(`${what}: aborted`));
    };
    if (controller.signal.aborted) onAborted();
    else controller.signal.addEventListener('abort', onAborted, { once: true });
    timer = setTimeout(() => controller.abort(new Error(`${what}: no answer in ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([run(controller.signal), aborted]);
  } catch (error) {
    throw error instanceof Error ? error : new Error(String(error));
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onAbort);
  }
}

/** Per-call client-node options that put `signal` on the request. */
function withSignal(k8s: ClientNodeModule, signal: AbortSignal): ClientNode.ConfigurationOptions {
  return {
    middleware: [
      {
        pre(context) {
          context.setSignal(signal);
          return new k8s.Observable(Promise.resolve(context));
        },
        post(context) {
          return new k8s.Observable(Promise.resolve(context));
        },
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Never lets client-node's error through: it can quote the file's lines, tokens included. */
function loadFile(kc: ClientNode.KubeConfig, file: string): void {
  try {
    kc.loadFromFile(file);
  } catch (error) {
    throw kubeconfigError(error, file);
  }
}

function loadConfig(k8s: ClientNodeModule, options: K8sConnectionOptions): ClientNode.KubeConfig {
  const kc = new k8s.KubeConfig();
  const env = process.env;
  const file = options.kubeconfig ?? env['KUBECONFIG']?.split(':').find((f) => f !== '');
  const prefix = options.inClusterPathPrefix ?? '';
  if (file !== undefined) {
    if (!existsSync(file)) {
      throw new ConfigError('kubeconfig', `kubeconfig ${file} does not exist`, 'k8s resolver');
    }
    loadFile(kc, file);
  } else if (env['KUBERNETES_SERVICE_HOST'] && env['KUBERNETES_SERVICE_PORT']) {
    if (!existsSync(`${prefix}${SERVICE_ACCOUNT_DIR}/token`)) {
      throw new ConfigError(
        'kubeconfig',
        `in a pod (KUBERNETES_SERVICE_HOST is set) but no service-account token at ${prefix}${SERVICE_ACCOUNT_DIR}/token (automountServiceAccountToken: false?)`,
        'k8s resolver',
      );
    }
    try {
      kc.loadFromCluster(prefix);
    } catch (error) {
      throw kubeconfigError(error, `the service account at ${prefix}${SERVICE_ACCOUNT_DIR}`);
    }
  } else if (existsSync(join(homedir(), '.kube', 'config'))) {
    loadFile(kc, join(homedir(), '.kube', 'config'));
  } else {
    throw new ConfigError(
      'kubeconfig',
      'no Kubernetes API server configured: not in a pod (KUBERNETES_SERVICE_HOST unset), no KUBECONFIG and no ~/.kube/config; pass the kubeconfig option',
      'k8s resolver',
    );
  }
  if (options.context !== undefined) {
    if (!kc.getContexts().some((c) => c.name === options.context)) {
      throw new ConfigError(
        'context',
        `kubeconfig has no context "${options.context}"`,
        'k8s resolver',
      );
    }
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError(
      'kubeconfig',
      `kubeconfig context "${kc.getCurrentContext()}" names no cluster`,
      'k8s resolver',
    );
  }
  return kc;
}

/** Builds the API client: throws `ConfigError` when no cluster can be found. */
export async function createK8sApi(options: K8sConnectionOptions): Promise<K8sApi> {
  const k8s = await loadClientNode();
  const kc = loadConfig(k8s, options);
  // Quoted in every failure message: a server URL with userinfo would show it.
  const server = redactSecrets(kc.getCurrentCluster()!.server);
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace?.trim();
  const defaultNamespace = options.namespace ?? (contextNamespace || 'default');
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apis = kc.makeApiClient(k8s.ApisApi);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);

  /** Opens a watch of `path` (with bookmarks and a jittered server timeout). */
  async function watch(
    path: string,
    selector: { labelSelector: string } | { fieldSelector: string } | Record<string, never>,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal: AbortSignal | undefined,
  ): Promise<{ abort(): void }> {
    // client-node's Watch takes no signal and sets no timeout while the request is opening;
    // each watch gets its own agent (client-node makes one per request), destroyed to abandon
    // a watch that has not opened yet, so that its socket does not linger.
    let agent: { destroy?: () => void } | undefined;
    const config = {
      getCurrentCluster: () => kc.getCurrentCluster(),
      applyToFetchOptions: async (options: object) => {
        const applied = await kc.applyToFetchOptions(options);
        agent = applied.agent as { destroy?: () => void } | undefined;
        return applied;
      },
    } as unknown as ClientNode.KubeConfig;
    const jitter = Math.round((Math.random() * 2 - 1) * 5);
    const opening = new k8s.Watch(config).watch(
      path,
      {
        ...selector,
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: WATCH_TIMEOUT_SECONDS + jitter,
      },
      (type: string, object: unknown) => onEvent(type as WatchEventType, object),
      done,
    );
    try {
      return await bounded(timeoutMs, `opening a watch at ${server}`, signal, () => opening);
    } catch (error) {
      agent?.destroy?.();
      // A watch that opens anyway is aborted at once.
      void opening.then((controller) => controller.abort()).catch(() => undefined);
      throw error;
    }
  }

  return {
    server,
    defaultNamespace,
    async listSlices(namespace, service, signal) {
      const items: SliceLike[] = [];
      let resourceVersion = '';
      let next: string | undefined;
      do {
        const page = await bounded(
          timeoutMs,
          `listing EndpointSlices at ${server}`,
          signal,
          (bound) =>
            discovery.listNamespacedEndpointSlice(
              {
                namespace,
                labelSelector: `${SERVICE_NAME_LABEL}=${service}`,
                limit: 500,
                ...(next !== undefined ? { _continue: next } : {}),
              },
              withSignal(k8s, bound),
            ),
        );
        items.push(...(page.items as SliceLike[]));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        next = page.metadata?._continue || undefined;
      } while (next !== undefined);
      return { items, resourceVersion };
    },
    async readService(namespace, service, signal) {
      try {
        return await bounded(
          timeoutMs,
          `reading Service ${namespace}/${service} at ${server}`,
          signal,
          (bound) =>
            core.readNamespacedService({ namespace, name: service }, withSignal(k8s, bound)),
        );
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },
    watchSlices(namespace, service, resourceVersion, onEvent, done, signal) {
      return watch(
        `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
        { labelSelector: `${SERVICE_NAME_LABEL}=${service}` },
        resourceVersion,
        onEvent,
        done,
        signal,
      );
    },
    async listEndpoints(namespace, service, signal) {
      const list = await bounded(timeoutMs, `listing Endpoints at ${server}`, signal, (bound) =>
        core.listNamespacedEndpoints(
          { namespace, fieldSelector: `metadata.name=${service}` },
          withSignal(k8s, bound),
        ),
      );
      return {
        items: list.items,
        resourceVersion: list.metadata?.resourceVersion ?? '',
      };
    },
    watchEndpoints(namespace, service, resourceVersion, onEvent, done, signal) {
      return watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/endpoints`,
        { fieldSelector: `metadata.name=${service}` },
        resourceVersion,
        onEvent,
        done,
        signal,
      );
    },
    async listConfigMaps(namespace, name, signal) {
      const list = await bounded(
        timeoutMs,
        `listing ConfigMap ${namespace}/${name} at ${server}`,
        signal,
        (bound) =>
          core.listNamespacedConfigMap(
            { namespace, fieldSelector: `metadata.name=${name}` },
            withSignal(k8s, bound),
          ),
      );
      return {
        items: list.items,
        resourceVersion: list.metadata?.resourceVersion ?? '',
      };
    },
    async listPods(namespace, labelSelector, signal) {
      const items: PodLike[] = [];
      let resourceVersion = '';
      let next: string | undefined;
      do {
        const page = await bounded(
          timeoutMs,
          `listing Pods of namespace ${namespace} at ${server}`,
          signal,
          (bound) =>
            core.listNamespacedPod(
              {
                namespace,
                ...(labelSelector !== undefined ? { labelSelector } : {}),
                limit: 500,
                ...(next !== undefined ? { _continue: next } : {}),
              },
              withSignal(k8s, bound),
            ),
        );
        // Only name, version and labels are kept: a Pod object is large.
        for (const pod of page.items) {
          items.push({
            metadata: {
              ...(pod.metadata?.name !== undefined ? { name: pod.metadata.name } : {}),
              ...(pod.metadata?.labels !== undefined ? { labels: pod.metadata.labels } : {}),
            },
          });
        }
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        next = page.metadata?._continue || undefined;
      } while (next !== undefined);
      return { items, resourceVersion };
    },
    watchPods(namespace, labelSelector, resourceVersion, onEvent, done, signal) {
      return watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
        labelSelector !== undefined ? { labelSelector } : {},
        resourceVersion,
        onEvent,
        done,
        signal,
      );
    },
    async istioVersion(signal) {
      const groups = await bounded(
        timeoutMs,
        `discovering the API groups at ${server}`,
        signal,
        (bound) => apis.getAPIVersions(withSignal(k8s, bound)),
      );
      const group = groups.groups.find((g) => g.name === ISTIO_GROUP);
      const served = new Set(group?.versions.map((v) => v.version) ?? []);
      if (served.has('v1')) return 'v1';
      if (served.has('v1beta1')) return 'v1beta1';
      return undefined;
    },
    async listIstio(kind, version, namespace, signal) {
      const items: IstioObjectLike[] = [];
      let resourceVersion = '';
      let next: string | undefined;
      do {
        const page = (await bounded(
          timeoutMs,
          `listing ${kind}.${ISTIO_GROUP} of namespace ${namespace} at ${server}`,
          signal,
          (bound) =>
            custom.listNamespacedCustomObject(
              {
                group: ISTIO_GROUP,
                version,
                namespace,
                plural: kind,
                limit: 500,
                ...(next !== undefined ? { _continue: next } : {}),
              },
              withSignal(k8s, bound),
            ),
        )) as {
          items?: IstioObjectLike[];
          metadata?: { resourceVersion?: string; continue?: string };
        };
        items.push(...(page.items ?? []));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        next = page.metadata?.continue || undefined;
      } while (next !== undefined);
      return { items, resourceVersion };
    },
    watchIstio(kind, version, namespace, resourceVersion, onEvent, done, signal) {
      return watch(
        `/apis/${ISTIO_GROUP}/${version}/namespaces/${encodeURIComponent(namespace)}/${kind}`,
        {},
        resourceVersion,
        onEvent,
        done,
        signal,
      );
    },
    watchConfigMaps(namespace, name, resourceVersion, onEvent, done, signal) {
      return watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`,
        { fieldSelector: `metadata.name=${name}` },
        resourceVersion,
        onEvent,
        done,
        signal,
      );
    },
    async readNodeLabels(name, signal) {
      try {
        const node = await bounded(
          timeoutMs,
          `reading Node ${name} at ${server}`,
          signal,
          (bound) => core.readNode({ name }, withSignal(k8s, bound)),
        );
        return node.metadata?.labels ?? {};
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },
  };
}
