/**
 * The contract every grpc-lb resolver implements. It knows nothing of grpc-js:
 * core's adapter (`grpc-js/resolver-adapter.ts`) turns it into a grpc-js
 * resolver and owns delivery, rate limiting, backoff, deduplication and the
 * "keep the last good set" rule, so a resolver only has to find endpoints.
 */

/** One backend address as discovered. */
export interface ResolvedEndpoint {
  /** IPv4 or IPv6 literal (no brackets) or a host name. */
  readonly host: string;
  /** TCP port, 1–65535. */
  readonly port: number;
  /** Relative weight for weighted policies; 0 means "known, receives no traffic". Default 1. */
  readonly weight?: number;
  /** Free-form labels (`version=v2`), used by subsets and routes. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Topology zone, for zone-aware routing (`zoneAware`). */
  readonly zone?: string;
  /**
   * The zones whose clients this endpoint should serve (Kubernetes
   * EndpointSlice `hints.forZones`, set under topology-aware routing or
   * `trafficDistribution: PreferClose`/`PreferSameZone`). Zone-aware routing
   * honours them as kube-proxy does: only when every endpoint of the set has
   * some. Leave it out when the registry has no such hints.
   */
  readonly forZones?: readonly string[];
}

/** A gRPC service config as JSON (`{"loadBalancingConfig": [...], "methodConfig": [...]}`). */
export type ServiceConfigJson = Readonly<Record<string, unknown>>;

/** A complete resolution: the whole current set, never a delta. */
export interface Resolution {
  readonly endpoints: readonly ResolvedEndpoint[];
  /**
   * A service config carried by the registry. When present it replaces the
   * channel's `grpc.service_config` option, as in grpc-js. A string is the
   * document's text as stored (a registry key, a ConfigMap entry): the
   * adapter parses and validates it, so every resolver reports a bad
   * document the same way — the last good config is kept and a warning names
   * the field. Leave it out when the registry holds no document: the
   * channel's own config applies. A resolver that follows a document sends
   * it with every resolution (a resolution is the complete state).
   */
  readonly serviceConfig?: ServiceConfigJson | string;
  /**
   * Which document `serviceConfig` is, for operators: the registry, the key
   * or object, and its revision (`etcd key config/hello (revision 42)`).
   * Shown in warnings about the document and reported on the observer.
   */
  readonly serviceConfigSource?: string;
  /** Short context appended to errors that calls report ("3 endpoints from etcd prefix /svc"). */
  readonly note?: string;
}

/** Where a resolver reports. Calls may come at any time, from any callback; the adapter defers delivery. */
export interface ResolutionSink {
  /**
   * The complete current set. An empty list is honest: calls fail fast with
   * UNAVAILABLE (once the balancer's removal hold-down, if connected
   * endpoints were removed, has run out).
   */
  update(resolution: Resolution): void;
  /**
   * Discovery failed (registry down, bad answer). The adapter keeps the last
   * good set, backs off and asks `refresh()` again later.
   */
  error(error: Error): void;
  /** Non-fatal problem worth an operator's attention (a malformed registry entry that was skipped). */
  warn(message: string): void;
}

export interface EndpointResolver {
  /**
   * Begin discovery and report to `sink`. May be called again after `stop()`
   * (a channel that went idle and woke up): a resolver must be restartable.
   */
  start(sink: ResolutionSink): void;
  /**
   * The channel asks for fresh data (a connection dropped, or a backoff
   * retry after an error). Already rate-limited by the adapter; a watch-based
   * resolver may treat it as "re-list if the watch is broken".
   */
  refresh(): void;
  /** Release every timer, socket and watch. No sink call may follow until the next `start()`. */
  stop(): void;
}

/** What a resolver is given when it is created. */
export interface ResolverContext {
  /** The target as the user wrote it. */
  readonly target: string;
  /** The channel options (read-only; includes `grpc-lb.*` options). */
  readonly channelOptions: Readonly<Record<string, unknown>>;
}

/** The URI split per the gRPC naming spec: `scheme://authority/path`. */
export interface TargetUri {
  readonly scheme: string;
  /** `undefined` when the target has no `//authority/` part; `''` for `scheme:///path`. */
  readonly authority: string | undefined;
  readonly path: string;
}

/**
 * A resolver package exports one of these; `register()` installs it under
 * `scheme`. `parseTarget` is pure and throws `TargetError`: it runs inside
 * the client's constructor, so a malformed target fails there.
 */
export interface ResolverFactory<Parsed = unknown> {
  readonly scheme: string;
  parseTarget(target: TargetUri, original: string): Parsed;
  /** The default `:authority` (and TLS name) for calls: one `host[:port]`. */
  defaultAuthority(parsed: Parsed, target: TargetUri): string;
  create(parsed: Parsed, context: ResolverContext): EndpointResolver;
}
