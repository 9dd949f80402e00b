import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, redactSecrets } from '@grpc-lb/core';
import type * as ClientNode from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { kubeconfigError } from './kubeconfig-error';
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

/** The three calls the resolver makes; one implementation on `@kubernetes/client-node`. */
export interface K8sApi {
  /** The API server URL, for messages. */
  readonly server: string;
  readonly defaultNamespace: string;
  listSlices(
    namespace: string,
    service: string,
  ): Promise<{ items: SliceLike[]; resourceVersion: string }>;
  /** The Service, or undefined when it does not exist. */
  readService(namespace: string, service: string): Promise<ServiceLike | undefined>;
  /** Opens a watch; `done` is called once when it ends (`null`: the server closed it). */
  watchSlices(
    namespace: string,
    service: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
  ): Promise<{ abort(): void }>;
}

type ClientNodeModule = typeof ClientNode;
let clientNode: Promise<ClientNodeModule> | undefined;

/** `@kubernetes/client-node` 1.x is ESM only: imported once, on first use. */
function loadClientNode(): Promise<ClientNodeModule> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
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

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
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
  const watch = new k8s.Watch(kc);
  return {
    server,
    defaultNamespace,
    async listSlices(namespace, service) {
      const items: SliceLike[] = [];
      let resourceVersion = '';
      let next: string | undefined;
      do {
        const page = await withTimeout(
          discovery.listNamespacedEndpointSlice({
            namespace,
            labelSelector: `${SERVICE_NAME_LABEL}=${service}`,
            limit: 500,
            ...(next !== undefined ? { _continue: next } : {}),
          }),
          timeoutMs,
          `listing EndpointSlices at ${server}`,
        );
        items.push(...(page.items as SliceLike[]));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        next = page.metadata?._continue || undefined;
      } while (next !== undefined);
      return { items, resourceVersion };
    },
    async readService(namespace, service) {
      try {
        return await withTimeout(
          core.readNamespacedService({ namespace, name: service }),
          timeoutMs,
          `reading Service ${namespace}/${service} at ${server}`,
        );
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },
    async watchSlices(namespace, service, resourceVersion, onEvent, done) {
      const opening = watch.watch(
        `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
        {
          labelSelector: `${SERVICE_NAME_LABEL}=${service}`,
          resourceVersion,
          allowWatchBookmarks: true,
          // The server ends the watch after this; it is reopened from the last resourceVersion.
          timeoutSeconds: 240,
        },
        (type: string, object: unknown) => onEvent(type as WatchEventType, object),
        done,
      );
      try {
        return await withTimeout(opening, timeoutMs, `opening a watch at ${server}`);
      } catch (error) {
        // A watch that opens later is aborted at once.
        void opening.then((controller) => controller.abort()).catch(() => undefined);
        throw error;
      }
    },
  };
}
