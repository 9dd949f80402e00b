import { redactSecrets, TargetError, type TargetUri } from '@grpc-lb/core';

/** Where endpoints are read from (the resolver's `source` option; see K8sEndpointResolver). */
export type K8sEndpointSource = 'auto' | 'endpointslices' | 'endpoints';

const SOURCES: readonly K8sEndpointSource[] = ['auto', 'endpointslices', 'endpoints'];

/** The port a target asks for: a Service port number, a port name, or the Service's only port. */
export type K8sPortSelector =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'name'; readonly value: string }
  | { readonly kind: 'only' };

/**
 * A parsed Kubernetes target. The forms kuberesolver and go-zero users already write:
 *
 *     k8s:///hello:grpc                        Service hello, port named grpc, the default namespace
 *     k8s:///hello.prod:50051                  namespace prod, Service port 50051 (mapped to the pods' port)
 *     k8s:///hello.prod.svc.cluster.local:grpc the cluster DNS name
 *     k8s://prod/hello:grpc                    namespace as the authority (go-zero's k8s://ns/svc:port)
 *     kubernetes:///hello.prod                 the Service's only port
 *     kubernetes://hello.prod:8080/            kuberesolver's host-as-authority forms, with or
 *     kubernetes://hello.prod.svc.cluster.local without the trailing slash
 *
 * Two query parameters are accepted, on every form:
 * - `source=auto|endpointslices|endpoints` (e.g. `k8s:///hello.prod:grpc?source=endpoints`):
 *   overrides the resolver's `source` option for this target;
 * - `config=<ConfigMap>[/<key>]` (e.g. `k8s:///hello.prod:grpc?config=hello-lb`): the channel's
 *   service config is the text of data key `<key>` (default `service-config.json`) of that
 *   ConfigMap in the Service's namespace, followed live;
 * - `pod_labels=<key>[,<key>…]` (e.g. `k8s:///hello.prod:grpc?pod_labels=version`): each endpoint
 *   whose EndpointSlice entry names a Pod (targetRef) also carries these labels of that Pod, read
 *   from the Pods of the Service's namespace, followed live (at most 16 keys);
 * - `istio=true` (e.g. `k8s:///hello2.prod:grpc?istio=true`): the channel's service config is the
 *   translation of the Istio VirtualService and DestinationRules (networking.istio.io) of the
 *   Service's namespace that name the Service, followed live; the Pod labels their subsets select
 *   are followed as with `pod_labels=`. One source of service config: not with `config=`.
 * Any other parameter is refused.
 *
 * Credentials are refused (`k8s://user:token@…`): the API server is reached with the kubeconfig's
 * or the pod's service-account credentials, never the target's.
 *
 * The default namespace is the resolver's `namespace` option, else the kubeconfig context's, else
 * the pod's service-account namespace, else `default`.
 */
export interface K8sTarget {
  /** The target as written, with any secret in it replaced by `***` (for messages). */
  readonly original: string;
  readonly service: string;
  /** Undefined: the resolver's default namespace. */
  readonly namespace: string | undefined;
  readonly port: K8sPortSelector;
  /** Default `:authority` of calls: the host as written (`hello.prod`) and a numeric port. */
  readonly authority: string;
  /** `?source=…` in the target: overrides the resolver's `source` option. */
  readonly source?: K8sEndpointSource;
  /** `?config=<name>[/<key>]`: the ConfigMap (in the Service's namespace) holding the service config. */
  readonly config?: K8sConfigMapRef;
  /** `?pod_labels=<key>,…`: the Pod labels each endpoint also carries (distinct, in order). */
  readonly podLabels?: readonly string[];
  /** `?istio=true`: the service config is translated from the namespace's Istio resources. */
  readonly istio?: true;
}

/** At most this many keys in `?pod_labels=`. */
export const MAX_POD_LABELS = 16;

/** A ConfigMap data key holding a service config document. */
export interface K8sConfigMapRef {
  readonly name: string;
  /** The data key (default `service-config.json`). */
  readonly key: string;
}

/** The data key read when `?config=` names only the ConfigMap. */
export const DEFAULT_CONFIG_KEY = 'service-config.json';

/** Percent-decoding that leaves a malformed escape as written. */
function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const PARAMETERS =
  'a Kubernetes target takes only source=auto|endpointslices|endpoints, config=<ConfigMap>[/<key>], pod_labels=<key>[,<key>…] and istio=true';

interface Query {
  source?: K8sEndpointSource;
  config?: K8sConfigMapRef;
  podLabels?: readonly string[];
  istio?: true;
}

/**
 * The `?source=`, `?config=`, `?pod_labels=` and `?istio=` parameters of a query (the only ones
 * accepted).
 */
function parseQuery(query: string, original: string): Query {
  const parsed: Query = {};
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq >= 0 ? part.slice(0, eq) : part);
    const value = eq >= 0 ? decode(part.slice(eq + 1)) : '';
    if (key === 'source') {
      if (!(SOURCES as readonly string[]).includes(value)) {
        throw new TargetError(
          original,
          `source=${JSON.stringify(redactSecrets(value))} is not auto, endpointslices or endpoints`,
        );
      }
      if (parsed.source !== undefined) throw new TargetError(original, 'source is given twice');
      parsed.source = value as K8sEndpointSource;
    } else if (key === 'config') {
      if (parsed.config !== undefined) throw new TargetError(original, 'config is given twice');
      parsed.config = parseConfigRef(value, original);
    } else if (key === 'pod_labels') {
      if (parsed.podLabels !== undefined)
        throw new TargetError(original, 'pod_labels is given twice');
      parsed.podLabels = parsePodLabels(value, original);
    } else if (key === 'istio') {
      if (parsed.istio !== undefined) throw new TargetError(original, 'istio is given twice');
      if (value !== 'true') {
        throw new TargetError(
          original,
          `istio=${JSON.stringify(redactSecrets(value))}: the only value is true (istio=true follows the namespace's VirtualServices and DestinationRules; leave it out otherwise)`,
        );
      }
      parsed.istio = true;
    } else {
      // Only the name: a value could be a secret (`token=…`).
      throw new TargetError(
        original,
        `unknown query parameter "${redactSecrets(key)}" (${PARAMETERS})`,
      );
    }
  }
  if (parsed.istio && parsed.config !== undefined) {
    throw new TargetError(
      original,
      'config= and istio=true both give the service config: a target takes one source of service config (a ConfigMap, or the Istio resources)',
    );
  }
  return parsed;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]+$/;

/** `config=<name>[/<key>]`: a ConfigMap name (DNS subdomain) and a data key. */
function parseConfigRef(value: string, original: string): K8sConfigMapRef {
  if (value === '') {
    throw new TargetError(
      original,
      'config= is empty (expected config=<ConfigMap name>[/<data key>], e.g. config=hello-lb)',
    );
  }
  const slash = value.indexOf('/');
  const name = slash >= 0 ? value.slice(0, slash) : value;
  const key = slash >= 0 ? value.slice(slash + 1) : DEFAULT_CONFIG_KEY;
  const shown = JSON.stringify(redactSecrets(name));
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new TargetError(
      original,
      `config: ${shown} is not a ConfigMap name (a DNS subdomain: lowercase letters, digits, "-" and ".", at most 253)`,
    );
  }
  const shownKey = JSON.stringify(redactSecrets(key));
  if (key.length > 253 || !CONFIG_MAP_KEY.test(key) || key === '.' || key.startsWith('..')) {
    throw new TargetError(
      original,
      `config: ${shownKey} is not a ConfigMap data key (letters, digits, "-", "_" and ".", at most 253, not "." nor starting with "..")`,
    );
  }
  return { name, key };
}

/** The name part of a label key: 63 characters at most, alphanumeric at both ends. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * `pod_labels=<key>[,<key>…]`: Kubernetes label keys (`[<DNS subdomain prefix>/]<name>`), at most
 * MAX_POD_LABELS, none twice.
 */
function parsePodLabels(value: string, original: string): readonly string[] {
  if (value === '') {
    throw new TargetError(
      original,
      'pod_labels= is empty (expected pod_labels=<label key>[,<label key>…], e.g. pod_labels=version)',
    );
  }
  const keys = value.split(',');
  if (keys.length > MAX_POD_LABELS) {
    throw new TargetError(
      original,
      `pod_labels: ${keys.length} label keys, at most ${MAX_POD_LABELS}`,
    );
  }
  const seen = new Set<string>();
  for (const key of keys) {
    const shown = JSON.stringify(redactSecrets(key));
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
      throw new TargetError(
        original,
        `pod_labels: ${shown} is not a label key: its prefix before "/" must be a DNS subdomain (lowercase letters, digits, "-" and ".", at most 253)`,
      );
    }
    if (name.length > 63 || !LABEL_NAME.test(name)) {
      throw new TargetError(
        original,
        `pod_labels: ${shown} is not a label key ([<prefix>/]<name>, the name: letters, digits, "-", "_" and ".", at most 63, starting and ending with a letter or digit)`,
      );
    }
    if (seen.has(key)) throw new TargetError(original, `pod_labels: ${shown} is given twice`);
    seen.add(key);
  }
  return keys;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SERVICE_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CLUSTER_LABEL = /^[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?$/;
const FORMS =
  'expected k8s:///<service>[.<namespace>][:<port or port name>] (e.g. k8s:///hello.prod:grpc), k8s://<namespace>/<service>[:<port>] or kubernetes://<service>.<namespace>[:<port>]/';

function checkNamespace(namespace: string, original: string): string {
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw new TargetError(
      original,
      `"${namespace}" is not a namespace name (lowercase letters, digits and "-", at most 63)`,
    );
  }
  return namespace;
}

function checkService(service: string, original: string): string {
  if (service.length > 63 || !SERVICE_NAME.test(service)) {
    throw new TargetError(
      original,
      `"${service}" is not a Service name (lowercase letters, digits and "-", starting with a letter, at most 63)`,
    );
  }
  return service;
}

function parsePort(raw: string, original: string): K8sPortSelector {
  if (/^\d+$/.test(raw)) {
    const value = Number(raw);
    if (value < 1 || value > 65535) {
      throw new TargetError(original, `port ${raw} is out of range 1–65535`);
    }
    return { kind: 'number', value };
  }
  if (raw.length > 15 || !PORT_NAME.test(raw) || !/[a-z]/.test(raw)) {
    throw new TargetError(
      original,
      `"${raw}" is neither a port number nor a port name (lowercase letters, digits and "-", at most 15)`,
    );
  }
  return { kind: 'name', value: raw };
}

/** Parses `k8s:` / `kubernetes:` targets; throws `TargetError` naming the part that is wrong. */
export function parseK8sTarget(uri: TargetUri, written: string): K8sTarget {
  const original = redactSecrets(written);
  if (uri.path.includes('#')) {
    throw new TargetError(original, 'a Kubernetes target takes no fragment');
  }
  const question = uri.path.indexOf('?');
  const { source, config, podLabels, istio } =
    question >= 0 ? parseQuery(uri.path.slice(question + 1), original) : ({} as Query);
  let pathPart = question >= 0 ? uri.path.slice(0, question) : uri.path;
  let uriAuthority = uri.authority;
  if (question >= 0 && pathPart === '' && uriAuthority) {
    // `kubernetes://hello.prod:8080/?source=…`: without the query, grpc's split would have left
    // the host in the path (`//hello.prod:8080/`); read it as that form.
    pathPart = `//${uriAuthority}/`;
    uriAuthority = undefined;
  }
  if (uriAuthority?.includes('@') || pathPart.includes('@')) {
    throw new TargetError(
      original,
      'credentials do not belong in a target (targets are logged): use a kubeconfig or the pod service account',
    );
  }
  let path: string;
  let authority = uriAuthority;
  if (authority === undefined && pathPart.startsWith('//')) {
    // kuberesolver's `kubernetes://hello.prod:8080/` and `kubernetes://hello.prod.svc.cluster.local`:
    // grpc's split takes an authority only when a path follows it, so the host (and port) written
    // as the authority is left in the path as `//host[:port][/]`.
    path = pathPart.slice(2).replace(/\/$/, '');
    authority = undefined;
  } else {
    path = pathPart.replace(/^\//, '');
  }
  if (path === '' || path.includes('/')) throw new TargetError(original, FORMS);
  const colon = path.lastIndexOf(':');
  const host = colon >= 0 ? path.slice(0, colon) : path;
  if (colon >= 0 && path.slice(colon + 1) === '') {
    throw new TargetError(original, 'the port after ":" is empty');
  }
  const port: K8sPortSelector =
    colon >= 0 ? parsePort(path.slice(colon + 1), original) : { kind: 'only' };
  const labels = host.split('.');
  // svc, svc.ns, svc.ns.svc, svc.ns.svc.<cluster domain…>
  if (labels.length > 2 && labels[2] !== 'svc') {
    throw new TargetError(
      original,
      `"${host}" is not <service>.<namespace> nor <service>.<namespace>.svc.<cluster domain>`,
    );
  }
  for (const label of labels.slice(3)) {
    // Not used to resolve; kuberesolver's README writes it as `cluster_name`, so "_" is allowed.
    if (label.length > 63 || !CLUSTER_LABEL.test(label)) {
      throw new TargetError(original, `"${host}" has an invalid cluster domain label "${label}"`);
    }
  }
  const service = checkService(labels[0] ?? '', original);
  let namespace = labels[1] !== undefined ? checkNamespace(labels[1], original) : undefined;
  const authorityNamespace = authority !== undefined && authority !== '' ? authority : undefined;
  if (authorityNamespace !== undefined) {
    checkNamespace(authorityNamespace, original);
    if (namespace !== undefined && namespace !== authorityNamespace) {
      throw new TargetError(
        original,
        `two namespaces: "${authorityNamespace}" as the authority and "${namespace}" in the host`,
      );
    }
    namespace = authorityNamespace;
  }
  const authorityHost =
    labels.length === 1 && namespace !== undefined ? `${service}.${namespace}` : host;
  return {
    original,
    service,
    namespace,
    port,
    authority: port.kind === 'number' ? `${authorityHost}:${port.value}` : authorityHost,
    ...(source !== undefined ? { source } : {}),
    ...(config !== undefined ? { config } : {}),
    ...(podLabels !== undefined ? { podLabels } : {}),
    ...(istio !== undefined ? { istio } : {}),
  };
}
