/**
 * What becomes of a group whose server cannot be had (ghz, bind9, etcd, Consul, kube-apiserver or
 * the pod addresses it needs): skipped with the reason — or, with CI=true, failed (listed under
 * `failed`, and the CLI exits 1 after writing everything else): in CI a missing server binary is
 * a failure, not a skip. Pure.
 */

export interface Outcome {
  name: string;
  reason: string;
}

export interface UnavailableDecision {
  /** Where the outcome goes: the run's `failed` or `skipped` list. */
  list: 'failed' | 'skipped';
  outcome: Outcome;
  /** The progress line (stderr). */
  logLine: string;
}

/** Whether `env` says this is CI (`CI=true`, as GitHub Actions and most CI systems set it). */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}

export function unavailableDecision(
  name: string,
  reason: string,
  env: NodeJS.ProcessEnv = process.env,
): UnavailableDecision {
  if (isCi(env)) {
    return {
      list: 'failed',
      outcome: { name, reason: `${reason} (CI=true: a failure, not a skip)` },
      logLine: `FAILED ${name}: ${reason}`,
    };
  }
  return { list: 'skipped', outcome: { name, reason }, logLine: `skipping ${name}: ${reason}` };
}

/** Applies `unavailableDecision`: pushes the outcome onto `skipped` or `failed` and logs it. */
export function recordUnavailable(
  log: (line: string) => void,
  name: string,
  reason: string,
  skipped: Outcome[],
  failed: Outcome[],
  env: NodeJS.ProcessEnv = process.env,
): void {
  const decision = unavailableDecision(name, reason, env);
  (decision.list === 'failed' ? failed : skipped).push(decision.outcome);
  log(decision.logLine);
}
