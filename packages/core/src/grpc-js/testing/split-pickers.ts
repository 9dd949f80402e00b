/**
 * Drives `grpc-lb.traffic_split` pickers by hand, with no channel: endpoints
 * are plain `EndpointChild` values in a chosen state, each with a picker that
 * completes every pick naming that endpoint, and `makePicker` is called as
 * the balancer would call it after a state change. For tests only.
 */
import type { experimental } from '@grpc/grpc-js';
import { normalizeEndpoint } from '../../endpoint';
import { EndpointStats } from '../../endpoint-stats';
import { parseTrafficSplitConfig, type TrafficSplitConfig } from '../../traffic-split-config';
import { METHOD_PICK_KEY } from '../config-selector';
import type { EndpointChild, PickerContext } from '../endpoint-policy';
import { createRuntime, requirePeerGrpc, type Runtime } from '../runtime';
import { trafficSplitSpec } from '../traffic-split';

export const grpc = requirePeerGrpc();
export const CS = grpc.connectivityState;
export type State = (typeof CS)[keyof typeof CS];

/** What a pick did: the endpoint's key, `QUEUE`, or `FAIL: <details>`. */
export type Outcome = string;
export const QUEUED = 'QUEUE';

const keyOfSubchannel = new WeakMap<object, string>();

function completingPicker(key: string): experimental.Picker {
  const subchannel = {} as experimental.SubchannelInterface;
  keyOfSubchannel.set(subchannel, key);
  return {
    pick: () => ({
      pickResultType: grpc.experimental.PickResultType.COMPLETE,
      subchannel,
      status: null,
      onCallStarted: null,
      onCallEnded: null,
    }),
  };
}

export interface EndpointSpec {
  readonly state: State;
  readonly labels?: Readonly<Record<string, string>>;
  readonly weight?: number;
}

/** An endpoint of a grpc-lb resolver (labels and weight on it), `host:port` keyed. */
export function endpoint(key: string, spec: EndpointSpec): EndpointChild {
  const [host, port] = key.split(':');
  const info = normalizeEndpoint({
    host,
    port: Number(port),
    labels: spec.labels ?? {},
    weight: spec.weight ?? 1,
  });
  return {
    key: info.key,
    info,
    state: spec.state,
    picker: completingPicker(info.key),
    stats: new EndpointStats(),
  };
}

/** An endpoint as a resolver that is not grpc-lb's gives it: an address, nothing else. */
export function foreignEndpoint(key: string, state: State): EndpointChild {
  return { key, info: undefined, state, picker: completingPicker(key), stats: new EndpointStats() };
}

/** `count` endpoints `10.0.<n>.<i>:50051` labelled `version=<version>`, all in `state`. */
export function version(
  versionName: string,
  n: number,
  count: number,
  state: State,
  weight = 1,
): EndpointChild[] {
  return Array.from({ length: count }, (_, i) =>
    endpoint(`10.0.${n}.${i + 1}:50051`, { state, labels: { version: versionName }, weight }),
  );
}

export interface Split {
  readonly runtime: Runtime;
  /** Warnings the policy sent to the logger, in order. */
  readonly warnings: string[];
  /** The picker the balancer would publish for these endpoints, with this balancer's memo. */
  picker(
    config: TrafficSplitConfig,
    children: readonly EndpointChild[],
    memo: Map<string, unknown>,
  ): experimental.Picker;
}

export function splitPolicy(): Split {
  const warnings: string[] = [];
  const runtime = createRuntime(grpc, { warn: (message) => warnings.push(message) });
  const spec = trafficSplitSpec(runtime);
  return {
    runtime,
    warnings,
    picker(config, children, memo) {
      const context: PickerContext<TrafficSplitConfig> = {
        config,
        children,
        ready: children.filter((c) => c.state === CS.READY),
        target: 'static:///split.test',
        memo,
        weightOf: (c) => c.info?.weight ?? 1,
        rampOf: () => 1,
        rampingUp: false,
      };
      return spec.makePicker(context);
    },
  };
}

export function splitConfig(json: Record<string, unknown>): TrafficSplitConfig {
  return parseTrafficSplitConfig(json);
}

export interface CallSpec {
  /** The full method name; `undefined`: the pick carries none (a resolver that is not grpc-lb's). */
  readonly method?: string | undefined;
  readonly headers?: Readonly<Record<string, string>>;
}

export function pickArgs(call: CallSpec = {}): experimental.PickArgs {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(call.headers ?? {})) metadata.add(name, value);
  return {
    metadata,
    extraPickInfo: call.method === undefined ? {} : { [METHOD_PICK_KEY]: call.method },
  };
}

export function outcomeOf(result: experimental.PickResult): Outcome {
  const { PickResultType } = grpc.experimental;
  switch (result.pickResultType) {
    case PickResultType.COMPLETE:
      return keyOfSubchannel.get(result.subchannel!) ?? 'COMPLETE: unknown subchannel';
    case PickResultType.QUEUE:
      return QUEUED;
    default:
      return `FAIL: ${result.status?.details ?? ''}`;
  }
}

export function pickMany(picker: experimental.Picker, n: number, call: CallSpec = {}): Outcome[] {
  const out: Outcome[] = [];
  for (let i = 0; i < n; i++) out.push(outcomeOf(picker.pick(pickArgs(call))));
  return out;
}

/** Counts by outcome, every failure counted under `FAIL` whatever its message. */
export function tally(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.startsWith('FAIL: ') ? 'FAIL' : outcome;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
