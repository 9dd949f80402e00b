/**
 * What every grpc-lb policy shares: one pick_first leaf per endpoint, kept
 * across updates (an endpoint that stays keeps its leaf and connection —
 * gotcha 8), re-resolution asked when a READY endpoint drops, the channel
 * state aggregated over the leaves, and errors that name the target. A policy
 * only says how to pick among the children (`PolicySpec.makePicker`), so new
 * weights, labels or routes apply by building a new picker, never by
 * reconnecting.
 */
import type {
  ChannelOptions,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';
import type { NormalizedEndpoint } from '../endpoint';
import { endpointKey, TARGET_ATTRIBUTE, type GrpcLbEndpoint } from './endpoint-info';
import { withoutKey } from './options';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

export interface EndpointChild {
  readonly key: string;
  /** Weight, labels and zone from the resolver; absent for endpoints of non-grpc-lb resolvers. */
  readonly info: NormalizedEndpoint | undefined;
  readonly state: ConnectivityState;
  readonly picker: experimental.Picker;
}

export interface PickerContext<C> {
  readonly config: C;
  /** Every child, in resolver order. */
  readonly children: readonly EndpointChild[];
  /** The READY children, in resolver order (never empty). */
  readonly ready: readonly EndpointChild[];
  readonly target: string;
  /** Per-balancer state that outlives pickers (rotation positions); cleared when the config changes. */
  readonly memo: Map<string, unknown>;
}

export interface PolicySpec<C> {
  readonly name: string;
  /** Pure; throws `ConfigError` naming the field. */
  parse(json: unknown): C;
  /** The picker while at least one child is READY. */
  makePicker(context: PickerContext<C>): experimental.Picker;
}

export interface PolicyClasses {
  readonly name: string;
  readonly LoadBalancer: new (
    helper: experimental.ChannelControlHelper,
  ) => experimental.LoadBalancer;
  readonly Config: Parameters<typeof experimental.registerLoadBalancerType>[2];
}

export function createEndpointPolicy<C>(rt: Runtime, spec: PolicySpec<C>): PolicyClasses {
  const {
    LeafLoadBalancer,
    createChildChannelControlHelper,
    UnavailablePicker,
    QueuePicker,
    CHANNEL_ARGS_CONFIG_SELECTOR_KEY,
  } = rt.grpc.experimental;
  const CS = rt.grpc.connectivityState;

  class PolicyConfig implements experimental.TypedLoadBalancingConfig {
    constructor(
      readonly parsed: C,
      private readonly json: unknown,
    ) {}
    getLoadBalancerName(): string {
      return spec.name;
    }
    toJsonObject(): object {
      return { [spec.name]: this.json ?? {} };
    }
    static createFromJson(json: unknown): PolicyConfig {
      return new PolicyConfig(spec.parse(json), json);
    }
  }

  interface Child extends EndpointChild {
    info: NormalizedEndpoint | undefined;
    state: ConnectivityState;
    picker: experimental.Picker;
    leaf: experimental.LeafLoadBalancer;
  }

  class EndpointPolicyLoadBalancer implements experimental.LoadBalancer {
    private children = new Map<string, Child>();
    private state: ConnectivityState = CS.IDLE;
    private config: C | undefined;
    private configText = '';
    private readonly memo = new Map<string, unknown>();
    private updatesPaused = false;
    private target = 'target';
    private note = '';
    private lastError: string | null = null;
    private destroyed = false;

    constructor(private readonly helper: experimental.ChannelControlHelper) {}

    updateAddressList(
      endpoints: experimental.StatusOr<experimental.Endpoint[]>,
      config: experimental.TypedLoadBalancingConfig,
      options: ChannelOptions,
      resolutionNote: string,
    ): boolean {
      if (!(config instanceof PolicyConfig)) return false;
      const configText = JSON.stringify(config.toJsonObject());
      if (configText !== this.configText) {
        this.memo.clear();
        this.configText = configText;
      }
      this.config = (config as PolicyConfig).parsed;
      const target: unknown = options[TARGET_ATTRIBUTE];
      if (typeof target === 'string') this.target = target;
      this.note = resolutionNote;
      if (!endpoints.ok) {
        if (this.children.size === 0) {
          this.publish(
            CS.TRANSIENT_FAILURE,
            new UnavailablePicker(endpoints.error),
            endpoints.error.details,
          );
        } else {
          this.recompute();
        }
        return true;
      }
      const leafOptions = withoutKey(options, CHANNEL_ARGS_CONFIG_SELECTOR_KEY);
      const next = new Map<string, Child>();
      const added: Child[] = [];
      for (const endpoint of endpoints.value) {
        const key = endpointKey(endpoint);
        if (next.has(key)) continue;
        const info = (endpoint as Partial<GrpcLbEndpoint>).grpcLb;
        const existing = this.children.get(key);
        if (existing) {
          existing.info = info;
          next.set(key, existing);
        } else {
          const child = this.createChild(key, info, endpoint, leafOptions);
          next.set(key, child);
          added.push(child);
        }
      }
      for (const [key, child] of this.children) {
        if (!next.has(key)) child.leaf.destroy();
      }
      this.children = next;
      rt.trace(`${spec.name} ${this.target}: ${next.size} endpoints, ${added.length} new`);
      if (next.size === 0) {
        const details = `grpc-lb: no endpoints for ${this.target}${resolutionNote ? ` (${resolutionNote})` : ''}`;
        this.publish(CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
        return true;
      }
      this.updatesPaused = true;
      for (const child of added) child.leaf.startConnecting();
      this.updatesPaused = false;
      this.recompute();
      return true;
    }

    exitIdle(): void {
      for (const child of this.children.values()) {
        if (child.state === CS.IDLE) child.leaf.exitIdle();
      }
    }

    resetBackoff(): void {
      // The leaves' subchannels own their reconnect backoff.
    }

    destroy(): void {
      this.destroyed = true;
      for (const child of this.children.values()) child.leaf.destroy();
      this.children.clear();
      this.memo.clear();
    }

    getTypeName(): string {
      return spec.name;
    }

    private createChild(
      key: string,
      info: NormalizedEndpoint | undefined,
      endpoint: experimental.Endpoint,
      options: ChannelOptions,
    ): Child {
      const child = { key, info, state: CS.IDLE } as Child;
      const helper = createChildChannelControlHelper(this.helper, {
        updateState: (
          state: ConnectivityState,
          picker: experimental.Picker,
          errorMessage: string | null,
        ) => {
          if (this.destroyed || this.children.get(key) !== child) return;
          const previous = child.state;
          child.state = state;
          child.picker = picker;
          if (errorMessage) this.lastError = errorMessage;
          if (previous === CS.READY && state !== CS.READY) {
            rt.trace(`${spec.name} ${this.target}: ${key} left READY`);
            this.helper.requestReresolution();
          }
          this.recompute();
        },
      });
      child.leaf = new LeafLoadBalancer(endpoint, helper, options, this.note);
      child.picker = new QueuePicker(child.leaf as unknown as experimental.LoadBalancer);
      return child;
    }

    private recompute(): void {
      if (this.updatesPaused || this.destroyed || this.config === undefined) return;
      const children = [...this.children.values()];
      const ready: Child[] = [];
      const idle: Child[] = [];
      let connecting = 0;
      for (const child of children) {
        if (child.state === CS.READY) ready.push(child);
        else if (child.state === CS.CONNECTING) connecting++;
        else if (child.state === CS.IDLE) idle.push(child);
      }
      if (ready.length > 0) {
        const picker = spec.makePicker({
          config: this.config,
          children,
          ready,
          target: this.target,
          memo: this.memo,
        });
        this.publish(CS.READY, picker, null);
      } else if (connecting > 0 || idle.length > 0) {
        this.publish(CS.CONNECTING, new QueuePicker(this), null);
      } else {
        const details =
          `grpc-lb: no reachable endpoint for ${this.target}: all ${this.children.size} failing` +
          (this.lastError ? ` (last error: ${this.lastError})` : '');
        this.publish(CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
      }
      // Every endpoint stays connected: a leaf that went idle reconnects.
      for (const child of idle) child.leaf.exitIdle();
    }

    private publish(
      state: ConnectivityState,
      picker: experimental.Picker,
      errorMessage: string | null,
    ): void {
      if (state !== this.state)
        rt.trace(`${spec.name} ${this.target}: ${CS[this.state]} -> ${CS[state]}`);
      this.state = state;
      this.helper.updateState(state, picker, errorMessage);
    }
  }

  return { name: spec.name, LoadBalancer: EndpointPolicyLoadBalancer, Config: PolicyConfig };
}
