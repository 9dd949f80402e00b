import { redactSecrets } from '@grpc-lb/core';
import { K8sResolutionError } from './errors';
import { ListWatchFollower, type FollowerEvents, type FollowerTimings } from './follower';
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

export interface ConfigMapFollowerEvents extends FollowerEvents {
  /** The document was read for the first time, or changed (a write, a deletion). */
  changed(document: ConfigDocument): void;
}

/** Timings shared with the EndpointSlice watch (see k8s-resolver.ts). */
export type ConfigMapFollowerTimings = FollowerTimings;

/**
 * Follows one ConfigMap data key: lists the ConfigMap (`fieldSelector=metadata.name=<name>`),
 * then watches it from the list's resourceVersion (see ListWatchFollower).
 */
export class ConfigMapFollower extends ListWatchFollower<ConfigMapLike> {
  private document: ConfigDocument | undefined;
  protected readonly keeping = 'its last document and listing it again';

  constructor(
    /** The Service the document is for (`K8sResolutionError.service`): its name, without namespace. */
    private readonly service: string,
    private readonly ref: K8sConfigMapRef,
    private readonly documentEvents: ConfigMapFollowerEvents,
    timings: ConfigMapFollowerTimings,
  ) {
    super(documentEvents, timings);
  }

  protected get subject(): string {
    return `ConfigMap ${this.namespace}/${this.ref.name}`;
  }

  protected list(
    api: K8sApi,
    signal: AbortSignal,
  ): Promise<{ items: ConfigMapLike[]; resourceVersion: string }> {
    return api.listConfigMaps(this.namespace, this.ref.name, signal);
  }

  protected openWatchOn(
    api: K8sApi,
    onEvent: (type: WatchEventType, object: unknown) => void,
    done: (error: unknown) => void,
    signal: AbortSignal,
  ): Promise<{ abort(): void }> {
    return api.watchConfigMaps(
      this.namespace,
      this.ref.name,
      this.resourceVersion,
      onEvent,
      done,
      signal,
    );
  }

  protected listed(items: ConfigMapLike[]): void {
    this.set(this.documentOf(items.find((i) => i.metadata?.name === this.ref.name)));
  }

  protected changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', item: ConfigMapLike): void {
    if (item.metadata?.name !== this.ref.name) return;
    this.set(this.documentOf(type === 'DELETED' ? undefined : item));
  }

  protected describe(error: unknown, api: K8sApi, doing: 'listing' | 'watching'): Error {
    return describeConfigMapFailure(
      error,
      `${this.namespace}/${this.service}`,
      this.ref,
      api.server,
      doing,
    );
  }

  protected forget(): void {
    this.document = undefined;
  }

  /** The document a ConfigMap (undefined: none) holds. */
  private documentOf(item: ConfigMapLike | undefined): ConfigDocument {
    const name = `${this.namespace}/${this.ref.name}`;
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
    this.documentEvents.changed(document);
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
