import { RegistrationError } from './errors';
import { adaptResolver, PROBE_PATH, type AdaptedResolverClass } from './grpc-js/resolver-adapter';
import type { PolicyClasses } from './grpc-js/endpoint-policy';
import { createLeastRequestPolicy } from './grpc-js/least-request';
import { createRoundRobinPolicy } from './grpc-js/round-robin';
import { createTrafficSplitPolicy } from './grpc-js/traffic-split';
import { createWeightedRoundRobinPolicy } from './grpc-js/weighted-round-robin';
import { createRuntime, requirePeerGrpc, type Grpc, type Runtime } from './grpc-js/runtime';
import { consoleLogger, type Logger } from './logger';
import { manualResolverFactory } from './manual-target';
import type { ResolverFactory } from './resolver-contract';
import { staticResolverFactory } from './static-target';

export interface RegisterOptions {
  /**
   * The application's own `@grpc/grpc-js` module (`import * as grpc from
   * '@grpc/grpc-js'`). Defaults to the peer dependency as resolved from this
   * package; pass it when the application could hold another copy.
   */
  readonly grpc?: Grpc;
  /** Resolvers of other packages (`@grpc-lb/resolver-*`) to install beside `static:` and `manual:`. */
  readonly resolvers?: readonly ResolverFactory[];
  /** Built-in grpc-js schemes (`dns`, …) a resolver may replace; each replacement is an explicit opt-in. */
  readonly replaceBuiltinSchemes?: readonly string[];
  /** Where warnings go (skipped endpoints, registry outages). Default: console.warn. */
  readonly logger?: Logger;
}

export interface Registration {
  readonly grpcJsVersion: string;
  readonly schemes: readonly string[];
  readonly policies: readonly string[];
}

const BUILTIN_SCHEMES = new Set(['dns', 'ipv4', 'ipv6', 'unix', 'unix-abstract']);

interface State {
  readonly runtime: Runtime;
  readonly logger: { current: Logger };
  readonly schemes: Map<string, { factory: ResolverFactory; Resolver: AdaptedResolverClass }>;
  readonly policies: Map<(rt: Runtime) => PolicyClasses, PolicyClasses>;
}

/** One state per copy of grpc-js, keyed by its `experimental` object (the same for CJS and ESM views). */
const states = new WeakMap<object, State>();

/**
 * Installs grpc-lb's schemes and policies into a copy of grpc-js. Nothing is
 * registered at import; calling this again is harmless. Throws
 * `UnsupportedGrpcJsError` for a grpc-js outside the supported range and
 * `RegistrationError` if, after registering, grpc-js does not see them.
 */
export function register(options: RegisterOptions = {}): Registration {
  const grpc = options.grpc ?? requirePeerGrpc();
  let state = states.get(grpc.experimental);
  if (!state) {
    const logger = { current: options.logger ?? consoleLogger };
    const runtime = createRuntime(grpc, { warn: (message) => logger.current.warn(message) });
    state = { runtime, logger, schemes: new Map(), policies: new Map() };
    states.set(grpc.experimental, state);
  } else if (options.logger) {
    state.logger.current = options.logger;
  }
  const { runtime } = state;
  const { experimental } = grpc;

  for (const create of [
    createRoundRobinPolicy,
    createWeightedRoundRobinPolicy,
    createTrafficSplitPolicy,
    createLeastRequestPolicy,
  ]) {
    if (state.policies.has(create)) continue;
    const policy = create(runtime);
    experimental.registerLoadBalancerType(policy.name, policy.LoadBalancer, policy.Config);
    state.policies.set(create, policy);
  }

  const replaceable = new Set(options.replaceBuiltinSchemes ?? []);
  const factories: readonly ResolverFactory[] = [
    staticResolverFactory,
    manualResolverFactory,
    ...(options.resolvers ?? []),
  ];
  for (const factory of factories) {
    const existing = state.schemes.get(factory.scheme);
    if (existing?.factory === factory) continue;
    if (BUILTIN_SCHEMES.has(factory.scheme) && !replaceable.has(factory.scheme)) {
      throw new RegistrationError(
        `the "${factory.scheme}:" scheme belongs to grpc-js; replacing it for every channel in the process ` +
          `needs register({ replaceBuiltinSchemes: ['${factory.scheme}'] })`,
      );
    }
    const Resolver = adaptResolver(runtime, factory);
    experimental.registerResolver(factory.scheme, Resolver);
    state.schemes.set(factory.scheme, { factory, Resolver });
  }

  verify(grpc, state);
  return {
    grpcJsVersion: runtime.version,
    schemes: [...state.schemes.keys()],
    policies: [...state.policies.values()].map((p) => p.name),
  };
}

/** Gotcha 2: registration into the wrong copy goes nowhere silently, so look it up again. */
function verify(grpc: Grpc, state: State): void {
  const { experimental } = grpc;
  for (const policy of state.policies.values()) {
    if (!experimental.isLoadBalancerNameRegistered(policy.name)) {
      throw new RegistrationError(
        `policy ${policy.name} is not registered in grpc-js ${state.runtime.version}`,
      );
    }
  }
  for (const [scheme, { Resolver }] of state.schemes) {
    let live = false;
    try {
      const probe = experimental.createResolver({ scheme, path: PROBE_PATH }, () => true, {});
      live = probe instanceof Resolver;
    } catch {
      live = false;
    }
    if (!live) {
      throw new RegistrationError(
        `scheme ${scheme}: is not served by grpc-lb in grpc-js ${state.runtime.version}`,
      );
    }
  }
}
