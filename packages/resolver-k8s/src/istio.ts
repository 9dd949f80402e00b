import { redactSecrets } from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import { ListWatchFollower, type FollowerEvents, type FollowerTimings } from './follower';
import {
  ISTIO_GROUP,
  statusMessage,
  statusOf,
  type IstioKind,
  type IstioObjectLike,
  type IstioVersion,
  type K8sApi,
  type WatchEventType,
} from './k8s-client';

/** How messages name each followed kind. */
export const ISTIO_NOUN: Record<IstioKind, { one: string; many: string }> = {
  virtualservices: { one: 'VirtualService', many: 'VirtualServices' },
  destinationrules: { one: 'DestinationRule', many: 'DestinationRules' },
};

/** The RBAC rule `?istio=true` needs, for messages. */
export const ISTIO_RULE = `list and watch on virtualservices and destinationrules (apiGroup ${ISTIO_GROUP})`;

export interface IstioFollowerEvents extends FollowerEvents {
  /** The objects were listed, or one of them changed. */
  changed(): void;
}

/**
 * Follows the VirtualServices or the DestinationRules of one namespace: lists them, then watches
 * them (see ListWatchFollower). Which version of networking.istio.io is read is asked of
 * `version` (API discovery, made once per resolver and shared by both kinds).
 */
export class IstioResourceFollower extends ListWatchFollower<IstioObjectLike> {
  /** Name → the object as last listed or watched. */
  private objects = new Map<string, IstioObjectLike>();
  private version: IstioVersion | undefined;
  protected readonly keeping: string;

  constructor(
    /** The Service the resources are for (`K8sResolutionError.service`), without namespace. */
    private readonly service: string,
    readonly kind: IstioKind,
    private readonly discover: (api: K8sApi, signal: AbortSignal) => Promise<IstioVersion>,
    private readonly istioEvents: IstioFollowerEvents,
    timings: FollowerTimings,
  ) {
    super(istioEvents, timings);
    this.keeping = `the last ${ISTIO_NOUN[kind].many} and listing them again`;
  }

  /** Every object of the namespace, as last read. */
  get items(): readonly IstioObjectLike[] {
    return [...this.objects.values()];
  }

  /** The version read (`networking.istio.io/v1`), once discovered. */
  get apiVersion(): string | undefined {
    return this.version === undefined ? undefined : `${ISTIO_GROUP}/${this.version}`;
  }

  protected get subject(): string {
    return `${ISTIO_NOUN[this.kind].many} of namespace ${this.namespace}`;
  }

  protected async list(
    api: K8sApi,
    signal: AbortSignal,
  ): Promise<{ items: IstioObjectLike[]; resourceVersion: string }> {
    this.version = await this.discover(api, signal);
    return api.listIstio(this.kind, this.version, this.namespace, signal);
  }

  protected openWatchOn(
    api: K8sApi,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal: AbortSignal,
  ): Promise<{ abort(): void }> {
    return api.watchIstio(
      this.kind,
      this.version ?? 'v1',
      this.namespace,
      this.resourceVersion,
      onEvent,
      done,
      signal,
    );
  }

  protected listed(items: IstioObjectLike[]): void {
    const objects = new Map<string, IstioObjectLike>();
    for (const item of items) {
      const name = item.metadata?.name;
      if (name) objects.set(name, item);
    }
    this.objects = objects;
    this.istioEvents.changed();
  }

  protected changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', item: IstioObjectLike): void {
    const name = item.metadata?.name;
    if (!name) return;
    if (type === 'DELETED') {
      if (!this.objects.delete(name)) return;
    } else {
      const before = this.objects.get(name);
      if (before?.metadata?.resourceVersion === item.metadata?.resourceVersion && before) return;
      this.objects.set(name, item);
    }
    this.istioEvents.changed();
  }

  protected describe(error: unknown, api: K8sApi, doing: 'listing' | 'watching'): Error {
    return describeIstioFailure(
      error,
      `${this.namespace}/${this.service}`,
      this.kind,
      api.server,
      doing,
    );
  }

  protected forget(): void {
    this.objects = new Map();
    this.version = undefined;
  }
}

/** What discovery answers when neither networking.istio.io/v1 nor v1beta1 is served. */
export class IstioNotServedError extends Error {
  readonly code = 404;
  constructor(server: string) {
    super(
      `the API server ${server} serves neither ${ISTIO_GROUP}/v1 nor ${ISTIO_GROUP}/v1beta1 (are the Istio CRDs installed?)`,
    );
    this.name = 'IstioNotServedError';
  }
}

/**
 * A K8sResolutionError naming the Istio resources, what failed and, for a 403, the RBAC rule to
 * grant. They are listed and watched as a collection, so `resourceNames` cannot narrow the rule.
 */
export function describeIstioFailure(
  error: unknown,
  service: string,
  kind: IstioKind,
  server: string,
  doing: 'listing' | 'watching',
): K8sResolutionError {
  const status = statusOf(error);
  const detail = statusMessage(error) ?? (error instanceof Error ? error.message : String(error));
  const [namespace] = service.split('/');
  const what = `${doing} ${ISTIO_NOUN[kind].many} (${ISTIO_GROUP}) of namespace ${namespace} (the service config of Service ${service}, istio=true) at ${server}`;
  let message: string;
  if (error instanceof IstioNotServedError) {
    message = `${what}: ${error.message}`;
  } else if (status === 403) {
    message =
      `${what}: 403 Forbidden: ${detail}. Grant this identity ${ISTIO_RULE} in namespace ` +
      `${namespace} (a Role and a RoleBinding; resourceNames cannot narrow it: they are listed ` +
      `and watched as a collection, not by name)`;
  } else if (status === 401) {
    message = `${what}: 401 Unauthorized: the API server refused the credentials (an expired or revoked token, or a client certificate from another CA)`;
  } else if (status !== undefined) {
    message = `${what}: ${status}: ${detail}`;
  } else {
    message = `${what}: ${detail}`;
  }
  return new K8sResolutionError(service, redactSecrets(message), status, { cause: error });
}

/**
 * Whether an Istio host (a VirtualService `hosts` entry or a DestinationRule `host`, written in
 * `namespace`) names Service `service` of `namespace`: `hello2`, `hello2.prod`, `hello2.prod.svc`,
 * `hello2.prod.svc.<cluster domain>`, or a wildcard covering `hello2.prod.svc.cluster.local`.
 */
export function hostNamesService(host: unknown, service: string, namespace: string): boolean {
  if (typeof host !== 'string') return false;
  const name = host.trim().toLowerCase().replace(/\.$/, '');
  if (name === '*') return true;
  if (name.startsWith('*.')) {
    return `${service}.${namespace}.svc.cluster.local`.endsWith(name.slice(1));
  }
  const labels = name.split('.');
  if (labels[0] !== service) return false;
  if (labels.length === 1) return true;
  return labels[1] === namespace && (labels.length === 2 || labels[2] === 'svc');
}

/**
 * Whether a resource of `namespace` is visible to a client in that same namespace under Istio's
 * `exportTo`: no list (exported everywhere by default), `*`, `.` or the namespace itself.
 */
export function exportedToOwnNamespace(spec: unknown, namespace: string): boolean {
  const exportTo = (spec as { exportTo?: unknown } | undefined)?.exportTo;
  if (!Array.isArray(exportTo) || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || e === '.' || e === namespace);
}

/** Whether the resource is about Service `service` of `namespace` (its hosts, its host). */
export function namesService(
  kind: IstioKind,
  item: IstioObjectLike,
  service: string,
  namespace: string,
): boolean {
  const spec = item.spec as { hosts?: unknown; host?: unknown } | undefined;
  if (kind === 'destinationrules') return hostNamesService(spec?.host, service, namespace);
  const hosts = spec?.hosts;
  return Array.isArray(hosts) && hosts.some((h) => hostNamesService(h, service, namespace));
}

/** Oldest first (Istio's order when several VirtualServices name one host), then by name. */
export function byCreation(a: IstioObjectLike, b: IstioObjectLike): number {
  const ta = a.metadata?.creationTimestamp ?? '';
  const tb = b.metadata?.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = a.metadata?.name ?? '';
  const nb = b.metadata?.name ?? '';
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** The label keys the subsets of a translated traffic split select on, sorted. */
export function subsetLabelKeys(serviceConfig: Record<string, unknown>): string[] {
  const keys = new Set<string>();
  const policies = serviceConfig['loadBalancingConfig'];
  if (!Array.isArray(policies)) return [];
  for (const policy of policies as unknown[]) {
    const split = (policy as Record<string, unknown> | null)?.['grpc-lb.traffic_split'];
    const subsets = (split as { subsets?: unknown } | undefined)?.subsets;
    if (!Array.isArray(subsets)) continue;
    for (const subset of subsets as unknown[]) {
      const labels = (subset as { labels?: unknown } | null)?.labels;
      if (labels !== null && typeof labels === 'object') {
        for (const key of Object.keys(labels)) keys.add(key);
      }
    }
  }
  return [...keys].sort();
}
