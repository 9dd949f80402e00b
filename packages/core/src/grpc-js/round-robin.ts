/**
 * `grpc-lb.round_robin`: one pick_first leaf per endpoint, picks rotate over
 * the READY ones. Unlike grpc-js's round_robin it diffs endpoint sets, so an
 * unchanged endpoint keeps its leaf and connection (gotcha 8), and its errors
 * name the target.
 */
import type {
  ChannelOptions,
  connectivityState as ConnectivityStateEnum,
  experimental,
} from '@grpc/grpc-js';
import { ROUND_ROBIN_POLICY, parseRoundRobinConfig } from '../service-config';
import { withoutKey } from './options';
import { endpointKey, TARGET_ATTRIBUTE } from './endpoint-info';
import type { Runtime } from './runtime';

type ConnectivityState = ConnectivityStateEnum;

export interface PolicyClasses {
  readonly name: string;
  readonly LoadBalancer: new (
    helper: experimental.ChannelControlHelper,
  ) => experimental.LoadBalancer;
  readonly Config: {
    new (): experimental.TypedLoadBalancingConfig;
    createFromJson(json: unknown): experimental.TypedLoadBalancingConfig;
  };
}

export function createRoundRobinPolicy(rt: Runtime): PolicyClasses {
  const {
    LeafLoadBalancer,
    createChildChannelControlHelper,
    UnavailablePicker,
    QueuePicker,
    CHANNEL_ARGS_CONFIG_SELECTOR_KEY,
  } = rt.grpc.experimental;
  const CS = rt.grpc.connectivityState;

  class RoundRobinConfig implements experimental.TypedLoadBalancingConfig {
    getLoadBalancerName(): string {
      return ROUND_ROBIN_POLICY;
    }
    toJsonObject(): object {
      return { [ROUND_ROBIN_POLICY]: {} };
    }
    static createFromJson(json: unknown): RoundRobinConfig {
      parseRoundRobinConfig(json);
      return new RoundRobinConfig();
    }
  }

  interface Child {
    readonly key: string;
    leaf: experimental.LeafLoadBalancer;
    state: ConnectivityState;
    picker: experimental.Picker;
  }

  class RoundRobinPicker implements experimental.Picker {
    private next: number;
    constructor(
      private readonly ready: readonly Child[],
      start: number,
    ) {
      this.next = start;
    }
    pick(args: experimental.PickArgs): experimental.PickResult {
      const child = this.ready[this.next]!;
      this.next = this.next + 1 === this.ready.length ? 0 : this.next + 1;
      return child.picker.pick(args);
    }
    /** The key the next pick would go to, so a rebuilt picker continues the rotation. */
    peekKey(): string {
      return this.ready[this.next]!.key;
    }
  }

  class RoundRobinLoadBalancer implements experimental.LoadBalancer {
    private children = new Map<string, Child>();
    private state: ConnectivityState = CS.IDLE;
    private readyPicker: RoundRobinPicker | undefined;
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
      if (!(config instanceof RoundRobinConfig)) return false;
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
        }
        return true;
      }
      const leafOptions = withoutKey(options, CHANNEL_ARGS_CONFIG_SELECTOR_KEY);
      const next = new Map<string, Child>();
      const added: Child[] = [];
      for (const endpoint of endpoints.value) {
        const key = endpointKey(endpoint);
        if (next.has(key)) continue;
        const existing = this.children.get(key);
        if (existing) {
          next.set(key, existing);
        } else {
          const child = this.createChild(key, endpoint, leafOptions);
          next.set(key, child);
          added.push(child);
        }
      }
      for (const [key, child] of this.children) {
        if (!next.has(key)) child.leaf.destroy();
      }
      this.children = next;
      rt.trace(`${ROUND_ROBIN_POLICY} ${this.target}: ${next.size} endpoints, ${added.length} new`);
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
      this.readyPicker = undefined;
    }

    getTypeName(): string {
      return ROUND_ROBIN_POLICY;
    }

    private createChild(
      key: string,
      endpoint: experimental.Endpoint,
      options: ChannelOptions,
    ): Child {
      const child = { key, state: CS.IDLE } as Child;
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
            rt.trace(`${ROUND_ROBIN_POLICY} ${this.target}: ${key} left READY`);
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
      if (this.updatesPaused || this.destroyed) return;
      const ready: Child[] = [];
      let connecting = 0;
      const idle: Child[] = [];
      for (const child of this.children.values()) {
        if (child.state === CS.READY) ready.push(child);
        else if (child.state === CS.CONNECTING) connecting++;
        else if (child.state === CS.IDLE) idle.push(child);
      }
      if (ready.length > 0) {
        let start = Math.floor(Math.random() * ready.length);
        if (this.readyPicker) {
          const nextKey = this.readyPicker.peekKey();
          const at = ready.findIndex((c) => c.key === nextKey);
          if (at >= 0) start = at;
        }
        this.publish(CS.READY, new RoundRobinPicker(ready, start), null);
      } else if (connecting > 0 || idle.length > 0) {
        this.publish(CS.CONNECTING, new QueuePicker(this), null);
      } else {
        const details =
          `grpc-lb: no reachable endpoint for ${this.target}: all ${this.children.size} failing` +
          (this.lastError ? ` (last error: ${this.lastError})` : '');
        this.publish(CS.TRANSIENT_FAILURE, new UnavailablePicker({ details }), details);
      }
      // Round robin keeps every endpoint connected: a leaf that went idle reconnects.
      for (const child of idle) child.leaf.exitIdle();
    }

    private publish(
      state: ConnectivityState,
      picker: experimental.Picker,
      errorMessage: string | null,
    ): void {
      if (state !== this.state) {
        rt.trace(`${ROUND_ROBIN_POLICY} ${this.target}: ${CS[this.state]} -> ${CS[state]}`);
      }
      this.state = state;
      this.readyPicker = picker instanceof RoundRobinPicker ? picker : undefined;
      this.helper.updateState(state, picker, errorMessage);
    }
  }

  return {
    name: ROUND_ROBIN_POLICY,
    LoadBalancer: RoundRobinLoadBalancer,
    Config: RoundRobinConfig,
  };
}
