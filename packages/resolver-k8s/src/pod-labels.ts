import { redactSecrets } from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import { ListWatchFollower, type FollowerEvents, type FollowerTimings } from './follower';
import {
  statusMessage,
  statusOf,
  type K8sApi,
  type PodLike,
  type WatchEventType,
} from './k8s-client';

export interface PodLabelFollowerEvents extends FollowerEvents {
  /**
   * The requested labels of some Pods changed: `pods` names them; undefined after a list (all of
   * them may have).
   */
  changed(pods: ReadonlySet<string> | undefined): void;
}

/**
 * Follows the requested labels of the Pods of one namespace: lists the Pods, then watches them
 * (see ListWatchFollower). Only the requested labels of each Pod that carries at least one of them
 * are kept, so memory grows with the Pods that matter, not with the size of a Pod object.
 *
 * With one key the list and watch are narrowed with the label selector `<key>` (the Pods that
 * carry it): a Pod that loses the label leaves the watch as a DELETED event. With several keys a
 * selector cannot say "any of them", so every Pod of the namespace is listed and watched.
 */
export class PodLabelFollower extends ListWatchFollower<PodLike> {
  /** Pod name → its requested labels (only Pods with at least one). */
  private pods = new Map<string, Readonly<Record<string, string>>>();
  protected readonly keeping = 'the last Pod labels and listing the Pods again';
  private readonly selector: string | undefined;

  constructor(
    /** The Service whose endpoints are labelled (`K8sResolutionError.service`), without namespace. */
    private readonly service: string,
    private readonly keys: readonly string[],
    private readonly podEvents: PodLabelFollowerEvents,
    timings: FollowerTimings,
  ) {
    super(podEvents, timings);
    this.selector = keys.length === 1 ? keys[0] : undefined;
  }

  /** The requested labels of Pod `name` (undefined: not seen, or it carries none of them). */
  labelsOf(name: string): Readonly<Record<string, string>> | undefined {
    return this.pods.get(name);
  }

  /** How many Pods carrying a requested label are held. */
  get size(): number {
    return this.pods.size;
  }

  protected get subject(): string {
    return `Pods of namespace ${this.namespace} (pod_labels=${this.keys.join(',')})`;
  }

  protected list(
    api: K8sApi,
    signal: AbortSignal,
  ): Promise<{ items: PodLike[]; resourceVersion: string }> {
    return api.listPods(this.namespace, this.selector, signal);
  }

  protected openWatchOn(
    api: K8sApi,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal: AbortSignal,
  ): Promise<{ abort(): void }> {
    return api.watchPods(
      this.namespace,
      this.selector,
      this.resourceVersion,
      onEvent,
      done,
      signal,
    );
  }

  protected listed(items: PodLike[]): void {
    const pods = new Map<string, Readonly<Record<string, string>>>();
    for (const item of items) {
      const name = item.metadata?.name;
      const labels = this.requested(item);
      if (name && labels !== undefined) pods.set(name, labels);
    }
    this.pods = pods;
    this.podEvents.changed(undefined);
  }

  protected changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', item: PodLike): void {
    const name = item.metadata?.name;
    if (!name) return;
    const labels = type === 'DELETED' ? undefined : this.requested(item);
    const before = this.pods.get(name);
    if (same(before, labels)) return;
    if (labels === undefined) this.pods.delete(name);
    else this.pods.set(name, labels);
    this.podEvents.changed(new Set([name]));
  }

  protected describe(error: unknown, api: K8sApi, doing: 'listing' | 'watching'): Error {
    return describePodFailure(
      error,
      `${this.namespace}/${this.service}`,
      this.keys,
      api.server,
      doing,
    );
  }

  protected forget(): void {
    this.pods = new Map();
  }

  /** The requested labels a Pod carries (undefined: none of them). */
  private requested(item: PodLike): Readonly<Record<string, string>> | undefined {
    const all = item.metadata?.labels;
    if (all === undefined) return undefined;
    let labels: Record<string, string> | undefined;
    for (const key of this.keys) {
      const value = all[key];
      if (typeof value !== 'string') continue;
      labels ??= {};
      labels[key] = value;
    }
    return labels === undefined ? undefined : Object.freeze(labels);
  }
}

function same(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/**
 * A K8sResolutionError naming the Pods, what failed and, for a 403, the RBAC rule to grant. Pods
 * are listed and watched by label, not by name, so `resourceNames` cannot narrow the rule.
 */
export function describePodFailure(
  error: unknown,
  service: string,
  keys: readonly string[],
  server: string,
  doing: 'listing' | 'watching',
): K8sResolutionError {
  const status = statusOf(error);
  const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const [namespace] = service.split('/');
  const what = `${doing} Pods of namespace ${namespace} (for the labels ${keys.join(', ')} of the endpoints of Service ${service}) at ${server}`;
  let message: string;
  if (status === 403) {
    message =
      `${what}: 403 Forbidden: ${detail}. Grant this identity list and watch on pods ` +
      `(the core apiGroup "") in namespace ${namespace} (a Role and a RoleBinding; ` +
      `resourceNames cannot narrow it: the Pods are listed and watched as a collection, not by name)`;
  } else if (status === 401) {
    message = `${what}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`;
  } else if (status !== undefined) {
    message = `${what}: ${status}: ${detail}`;
  } else {
    message = `${what}: ${detail}`;
  }
  return new K8sResolutionError(service, redactSecrets(message), status, { cause: error });
}
