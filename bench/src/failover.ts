/**
 * The failover scenarios: 4 backends under steady closed-loop load, one fault injected into one
 * backend at a fixed time into the measured window, the same fault under each policy. Pure: the
 * faults, policies, timings and targets; failover-run.ts runs them, failover-stats.ts measures.
 */
import { leastRequest, roundRobin, serviceConfig } from '@grpc-lb/core';
import { type BackendInfo, ipv4Target, staticTarget } from './scenarios';

export const FAILOVER = 'failover';

export const FAULTS = ['sigkill', 'hang', 'errors-50', 'slow-10x', 'errors-100'] as const;
export type FaultKind = (typeof FAULTS)[number];
/** The faults every policy is run against; `errors-100` is for the retry policies only. */
export const COMMON_FAULTS: readonly FaultKind[] = ['sigkill', 'hang', 'errors-50', 'slow-10x'];

/** Every backend's own service time in the failover runs (`setDelay`), so "10× slower" has a base. */
export const BASE_DELAY_MS = 2;
export const SLOW_DELAY_MS = BASE_DELAY_MS * 10;
/** Per-call deadline of the failover runs: what a hung backend costs each call sent to it. */
export const FAILOVER_DEADLINE_MS = 1000;
/** Backends of the failover set; the faulty one is `FAULTY_INDEX` (backend-2, 127.0.0.3). */
export const FAILOVER_BACKENDS = 4;
export const FAULTY_INDEX = 1;

export const FAULT_TITLES: Readonly<Record<FaultKind, string>> = {
  sigkill: 'one backend SIGKILLed (connections reset, reconnects refused)',
  hang: `one backend stops answering Greeter calls (connection and health stay up; ${FAILOVER_DEADLINE_MS} ms deadline)`,
  'errors-50': 'one backend fails 50% of calls with UNAVAILABLE',
  'slow-10x': `one backend 10× slower (${SLOW_DELAY_MS} ms instead of ${BASE_DELAY_MS} ms per call)`,
  'errors-100': 'one backend fails every call with UNAVAILABLE (connection and health stay up)',
};

export interface FailoverTiming {
  /** Measured window of one run, ms (after the warm-up). */
  durationMs: number;
  /** When the fault is injected, ms into the measured window. */
  faultAtMs: number;
  /** The "fault window": calls completing in [fault, fault + windowMs). */
  windowMs: number;
  /** Slices of the recovery analysis and of the timeline, ms. */
  bucketMs: number;
  /**
   * A failed call SENT this close to the end of sending means "not recovered", ms. At least one
   * deadline: a closed loop whose callers all wait on a hung backend sends nothing for a deadline,
   * then resends into the same hole, so a failing regime sends a failing call once per deadline.
   */
  tailMs: number;
}

const BUCKET_MS = 250;

/**
 * Full: 2 s of steady load, the fault, 4 s more. Quick: 0.75 s, the fault, 2.75 s more — enough
 * for calls sent to a hung backend before its ejection to reach their deadline, and for a tail
 * of one deadline after that.
 */
export function failoverTiming(quick: boolean): FailoverTiming {
  const common = {
    windowMs: 2 * FAILOVER_DEADLINE_MS,
    bucketMs: BUCKET_MS,
    tailMs: FAILOVER_DEADLINE_MS + BUCKET_MS,
  };
  return quick
    ? { durationMs: 3500, faultAtMs: 750, ...common }
    : { durationMs: 6000, faultAtMs: 2000, ...common };
}

export const POLICIES = {
  grpcJs: 'grpc-js-round_robin',
  rr: 'grpc-lb-round_robin',
  rrOutlier: 'grpc-lb-round_robin+outlier',
  leastRequest: 'grpc-lb-least_request',
  rrRetry: 'grpc-lb-round_robin+retry',
  rrRetryBudget: 'grpc-lb-round_robin+retry+budget',
} as const;
export type FailoverPolicyName = (typeof POLICIES)[keyof typeof POLICIES];

export interface FailoverPolicy {
  name: FailoverPolicyName;
  title: string;
  /** The faults this policy is run against. */
  faults: readonly FaultKind[];
  target: string;
  channelOptions: Record<string, string | number>;
}

/** The outlier detection (and health checks) of the `+outlier` policy. */
export const OUTLIER_OPTIONS = {
  outlierDetection: {
    interval: '1s',
    baseEjectionTime: '30s',
    consecutiveFailures: 5,
    failurePercentageEjection: { threshold: 30, minimumHosts: 3, requestVolume: 20 },
  },
  healthCheck: { serviceName: '' },
} as const;

const GREETER_SERVICE = 'grpclb.test.Greeter';

/** Transparent retries of UNAVAILABLE, as a service owner would configure them. */
export const RETRY_METHOD_CONFIG = {
  name: [{ service: GREETER_SERVICE }],
  retryPolicy: {
    maxAttempts: 3,
    initialBackoff: '0.01s',
    maxBackoff: '0.1s',
    backoffMultiplier: 2,
    retryableStatusCodes: ['UNAVAILABLE'],
  },
};

/**
 * The retry budget of the `+retry+budget` policy: ratio 0.1 over a 1 s window, no minimum. The
 * window is short so that it fits the run many times over (a budget banks 10 % of the calls of
 * its last window: with a 10 s window the calls before the fault would pay for its retries).
 */
export const RETRY_BUDGET = { ratio: 0.1, minRetriesPerSecond: 0, ttl: '1s' } as const;

function option(config: object): Record<string, string> {
  return { 'grpc.service_config': JSON.stringify(config) };
}

export function failoverPolicies(backends: readonly BackendInfo[]): FailoverPolicy[] {
  const ours = staticTarget(backends);
  return [
    {
      name: POLICIES.grpcJs,
      title: "grpc-js's built-in round_robin (ipv4:a,b,c,d + service config)",
      faults: COMMON_FAULTS,
      target: ipv4Target(backends),
      channelOptions: option({ loadBalancingConfig: [{ round_robin: {} }] }),
    },
    {
      name: POLICIES.rr,
      title: 'grpc-lb.round_robin, no health options',
      faults: COMMON_FAULTS,
      target: ours,
      channelOptions: option(serviceConfig(roundRobin())),
    },
    {
      name: POLICIES.rrOutlier,
      title:
        'grpc-lb.round_robin + outlier detection (5 consecutive failures; > 30% failures of ' +
        '≥ 20 calls per 1 s interval; ejected 30 s) + health checks (Health/Watch)',
      faults: COMMON_FAULTS,
      target: ours,
      channelOptions: option(serviceConfig(roundRobin(OUTLIER_OPTIONS))),
    },
    {
      name: POLICIES.leastRequest,
      title: 'grpc-lb.least_request (two random choices, peak-EWMA latency × outstanding calls)',
      faults: COMMON_FAULTS,
      target: ours,
      channelOptions: option(serviceConfig(leastRequest())),
    },
    {
      name: POLICIES.rrRetry,
      title: 'grpc-lb.round_robin + retryPolicy (UNAVAILABLE, maxAttempts 3)',
      faults: ['sigkill', 'errors-100'],
      target: ours,
      channelOptions: option(serviceConfig(roundRobin(), { methodConfig: [RETRY_METHOD_CONFIG] })),
    },
    {
      name: POLICIES.rrRetryBudget,
      title:
        'grpc-lb.round_robin + retryPolicy (UNAVAILABLE, maxAttempts 3) + retryBudget ' +
        '(ratio 0.1, no minimum, ttl 1 s)',
      faults: ['errors-100'],
      target: ours,
      channelOptions: option(
        serviceConfig(roundRobin({ retryBudget: RETRY_BUDGET }), {
          methodConfig: [RETRY_METHOD_CONFIG],
        }),
      ),
    },
  ];
}

/** The name a fault's runs go by in reports and in `--scenarios`: `failover-sigkill`. */
export function faultScenarioName(fault: FaultKind): string {
  return `${FAILOVER}-${fault}`;
}

/**
 * Whether `--scenarios` selects this fault × policy: `failover` (the whole group),
 * `failover-<fault>` (every policy on it) or `failover-<fault>:<policy>` (one run).
 */
export function failoverWanted(
  scenarios: readonly string[] | null,
  fault: FaultKind,
  policy: string,
): boolean {
  if (scenarios === null) return true;
  const name = faultScenarioName(fault);
  return (
    scenarios.includes(FAILOVER) ||
    scenarios.includes(name) ||
    scenarios.includes(`${name}:${policy}`)
  );
}
