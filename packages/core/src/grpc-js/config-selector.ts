import type { experimental, Metadata } from '@grpc/grpc-js';
import type { MethodConfig, ServiceConfig } from '@grpc/grpc-js/build/src/service-config';
import type { CallConfig } from '@grpc/grpc-js/build/src/resolver';

/** The key under which the full method name (`/pkg.Service/Method`) reaches our pickers. */
export const METHOD_PICK_KEY = 'grpc-lb.method';
/** Present ('1') in the picks of a method with a hedging policy: the retry budget defers hedges. */
export const HEDGED_PICK_KEY = 'grpc-lb.hedged';

const MAX_CACHED_METHODS = 1000;
const NO_CONFIG: MethodConfig = Object.freeze({ name: [] });

/**
 * One instance per resolver, reused across updates: grpc-js passes the
 * resolver's attributes (this selector among them) into every subchannel's
 * arguments, and a new selector object would make every subchannel look new
 * and reconnect all backends on each update. Installing a selector replaces
 * grpc-js's default one, so `methodConfig` (timeouts, retries,
 * waitForReady) is applied here, with gRPC's precedence: service and
 * method, then service, then the empty name. See INTERNALS.md.
 */
export class StableConfigSelector implements experimental.ConfigSelector {
  private methodConfigs: readonly MethodConfig[] = [];
  private readonly cache = new Map<string, MethodConfig>();

  constructor(private readonly okStatus: number) {}

  setServiceConfig(config: ServiceConfig): void {
    this.methodConfigs = config.methodConfig ?? [];
    this.cache.clear();
  }

  invoke(methodName: string, _metadata: Metadata, _channelId: number): CallConfig {
    let methodConfig = this.cache.get(methodName);
    if (methodConfig === undefined) {
      methodConfig = this.lookup(methodName);
      if (this.cache.size < MAX_CACHED_METHODS) this.cache.set(methodName, methodConfig);
    }
    return {
      methodConfig,
      pickInformation: methodConfig.hedgingPolicy
        ? { [METHOD_PICK_KEY]: methodName, [HEDGED_PICK_KEY]: '1' }
        : { [METHOD_PICK_KEY]: methodName },
      status: this.okStatus,
      dynamicFilterFactories: [],
    };
  }

  /** grpc-js unrefs the previous selector on every resolution; ours is reused, so nothing is released. */
  unref(): void {}

  private lookup(methodName: string): MethodConfig {
    const [service = '', method = ''] = methodName.split('/').filter((s) => s.length > 0);
    let serviceMatch: MethodConfig | undefined;
    let emptyMatch: MethodConfig | undefined;
    for (const config of this.methodConfigs) {
      for (const name of config.name) {
        if (name.service && name.method) {
          if (name.service === service && name.method === method) return config;
        } else if (name.service) {
          if (name.service === service) serviceMatch ??= config;
        } else if (!name.method) {
          emptyMatch ??= config;
        }
      }
    }
    return serviceMatch ?? emptyMatch ?? NO_CONFIG;
  }
}
