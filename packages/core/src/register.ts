import { ConfigError, describe, RegistrationError, UnsupportedGrpcJsError } from './errors';
import { missingCapabilities } from './grpc-js/capabilities';
import { adaptResolver, PROBE_PATH, type AdaptedResolverClass } from './grpc-js/resolver-adapter';
import type { PolicyClasses } from './grpc-js/endpoint-policy';
import { createConsistentHashPolicy } from './grpc-js/consistent-hash';
import { createLeastRequestPolicy } from './grpc-js/least-request';
import { createRoundRobinPolicy } from './grpc-js/round-robin';
import { createTrafficSplitPolicy } from './grpc-js/traffic-split';
import { createWeightedRoundRobinPolicy } from './grpc-js/weighted-round-robin';
import {
  createRuntime,
  requirePeerGrpc,
  statusNames,
  SUPPORTED_GRPC_JS_RANGE,
  type Grpc,
  type Runtime,
} from './grpc-js/runtime';
import { consoleLogger, type Logger } from './logger';
import { createMetrics, type MetricsOptions } from './metrics';
import { createCompositeResolverFactory } from './composite-target';
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
  /** Resolvers of other packages (`@grpc-lb/resolver-*`) to install beside `static:`, `manual:` and `composite:`. */
  readonly resolvers?: readonly ResolverFactory[];
  /** Built-in grpc-js schemes (`dns`, …) a resolver may replace; each replacement is an explicit opt-in. */
  readonly replaceBuiltinSchemes?: readonly string[];
  /** Where warnings go (skipped endpoints, registry outages). Default: console.warn. */
  readonly logger?: Logger;
  /**
   * OpenTelemetry metrics (see the README's table). `true` or `{}` uses the
   * global meter provider of `@opentelemetry/api` (an optional peer
   * dependency, loaded only then); `{ meterProvider }` uses that provider.
   * Off by default: nothing is loaded and no call is measured. Switch it on
   * before creating channels (a running channel follows at its next resolver
   * update). `false` switches it off again.
   */
  readonly metrics?: boolean | MetricsOptions;
  /**
   * This process's zone, for zone-aware routing (`zoneAware`) when a
   * policy's config names no `localZone`; it comes before the
   * `GRPC_LB_ZONE` environment variable. A later `register()` may change it.
   */
  readonly zone?: string;
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
  /** `composite:`, resolving its sources through this copy's schemes. */
  readonly composite: ResolverFactory;
}

/** One state per copy of grpc-js, keyed by its `experimental` object (the same for CJS and ESM views). */
const states = new WeakMap<object, State>();

/**
 * Installs grpc-lb's schemes and policies into a copy of grpc-js. Nothing is
 * registered at import; calling this again is harmless. Throws
 * `UnsupportedGrpcJsError` for a grpc-js outside the supported range or a
 * module object lacking any function core uses (checked before anything is
 * registered), and `RegistrationError` if, after registering, grpc-js does
 * not see them.
 */
export function register(options: RegisterOptions = {}): Registration {
  const grpc = options.grpc ?? requirePeerGrpc();
  if (options.zone !== undefined && (typeof options.zone !== 'string' || options.zone === '')) {
    throw new ConfigError('zone', `expected a non-empty zone name, got ${describe(options.zone)}`);
  }
  const missing = missingCapabilities(grpc);
  let state = states.get(grpc.experimental);
  if (!state) {
    const logger = { current: options.logger ?? consoleLogger };
    const runtime = createCheckedRuntime(grpc, missing, containedLogger(logger));
    const schemes: State['schemes'] = new Map();
    const composite = createCompositeResolverFactory({
      get: (scheme) => schemes.get(scheme)?.factory,
      schemes: () => [...schemes.keys()],
    });
    state = { runtime, logger, schemes, policies: new Map(), composite };
    states.set(grpc.experimental, state);
  } else if (missing.length > 0) {
    // The same registries reached through an object missing something core calls.
    throw new UnsupportedGrpcJsError(state.runtime.version, SUPPORTED_GRPC_JS_RANGE, missing);
  } else if (options.logger) {
    state.logger.current = options.logger;
  }
  const { runtime } = state;
  const { experimental } = grpc;
  if (options.zone !== undefined) runtime.zone = options.zone;
  if (options.metrics === false) {
    runtime.metrics = undefined;
  } else if (options.metrics !== undefined) {
    runtime.metrics = createMetrics(
      options.metrics === true ? {} : options.metrics,
      statusNames(grpc),
      containedLogger(state.logger),
    );
  }

  for (const create of [
    createRoundRobinPolicy,
    createWeightedRoundRobinPolicy,
    createTrafficSplitPolicy,
    createLeastRequestPolicy,
    createConsistentHashPolicy,
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
    state.composite,
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

/**
 * The runtime for `grpc`, after checking both its version (when its
 * package.json can be found) and that it has everything core uses.
 */
/**
 * The user's logger as every part of grpc-lb calls it: a logger that throws never reaches the
 * caller (a balancer inside grpc-js, a resolver's timer); the first such failure goes to the
 * console once, since the logger itself cannot say it.
 */
function containedLogger(logger: { readonly current: Logger }): Logger {
  let reported = false;
  return {
    warn: (message) => {
      try {
        logger.current.warn(message);
      } catch (error) {
        if (reported) return;
        reported = true;
        consoleLogger.warn(
          `the logger passed to register() threw (${error instanceof Error ? error.message : String(error)}); ` +
            `its warnings are lost until it stops throwing. The first lost warning: ${message}`,
        );
      }
    },
  };
}

function createCheckedRuntime(grpc: Grpc, missing: readonly string[], logger: Logger): Runtime {
  if (missing.length === 0) return createRuntime(grpc, logger);
  try {
    createRuntime(grpc, logger);
  } catch (error) {
    // A module whose version is known to be wrong says so: the clearest message.
    if (error instanceof UnsupportedGrpcJsError) throw error;
  }
  throw new UnsupportedGrpcJsError('unknown', SUPPORTED_GRPC_JS_RANGE, missing);
}

/**
 * Registering into another copy of grpc-js than the one the channels use goes
 * nowhere, silently (each copy has its own registries): look every name up
 * again through the module we were given.
 */
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
