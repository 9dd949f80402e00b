/**
 * The shape of one bench run's results (what the CLI writes as JSON and renders): a module of its
 * own, so the modules that compute and render parts of it import it without importing the runner.
 */
import type { ConvergenceReport } from './convergence-stats';
import type { FailoverReport } from './failover-stats';
import type { FleetReport } from './fleet';
import type { GhzCalibrationReport } from './ghz';
import type { MachineInfo } from './machine';
import type { MicroResults } from './micro';
import type { Ratios } from './ratios';
import type { ScenarioReport } from './results';
import type { MetricsCostReport } from './metrics-cost';
import type { StartupSkewReport } from './startup-skew';

/** One target of the brief checked against a run. */
export interface TargetCheck {
  id: string;
  /** The target as the issue states it. */
  target: string;
  /** The measured value, formatted. */
  measured: string;
  /** null: not measured in this run (scenario skipped or failed). */
  met: boolean | null;
  /** Why it is met or missed, with the numbers behind it. */
  why: string;
}

export interface BenchRun {
  bench: 'quick' | 'full';
  date: string;
  command: string;
  startedAt: string;
  durationS: number;
  machine: MachineInfo;
  settings: {
    rounds: number;
    openRounds: number;
    quietThreshold: number | null;
    extraRounds: number;
    durationMs: number;
    warmupMs: number;
    concurrency: number;
    rate: number;
    backends: number;
    evennessBackends: number;
    evennessCalls: number;
    l4Channels: number;
    failoverRounds: number;
    convergenceRounds: number;
    ghzRounds: number;
    /** Absent in runs stored before the startup-skew group existed. */
    startupRounds?: number;
    /** Absent in runs stored before the metrics-cost group existed. */
    metricsRounds?: number;
  };
  closed: ScenarioReport[];
  open: ScenarioReport[];
  evenness: ScenarioReport[];
  /** The failover group: one report per fault × policy (failover-stats.ts). */
  failover: FailoverReport[];
  /** The convergence group: one report per resolver × client (convergence-stats.ts). */
  convergence: ConvergenceReport[];
  /**
   * The startup-skew group: one report per client × backend set (startup-skew.ts). Results
   * stored before the group existed have none: read them with `?? []`.
   */
  startup: StartupSkewReport[];
  /**
   * The metrics-cost group (metrics-cost.ts); null when it did not run, absent in results
   * stored before it existed.
   */
  metricsCost?: MetricsCostReport | null;
  /** The ghz calibration (ghz.ts); null when it did not run (see `skipped` and `failed`). */
  ghz: GhzCalibrationReport | null;
  skipped: { name: string; reason: string }[];
  /**
   * Groups that could not run and must not be skipped (under CI=true: ghz, or a convergence
   * group without its server — bind9, etcd, kube-apiserver, Consul): the CLI exits 1.
   */
  failed: { name: string; reason: string }[];
  ratios: Ratios;
  micro: MicroResults | null;
  microError: string | null;
  /**
   * The fleet simulation (fleet.ts); null when it did not run or failed (`fleetError`), absent
   * in results stored before it existed.
   */
  fleet?: FleetReport | null;
  fleetError?: string | null;
  targets: TargetCheck[];
}
