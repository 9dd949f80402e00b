/**
 * The bench's Kubernetes convergence group, run in a child process inside a network namespace of
 * its own (started by convergence-run.ts through `spawnInTestNetns`): the pod-like addresses, the
 * kube-apiserver, the backends and the load worker all live in that namespace. The bench options
 * come in GRPC_LB_BENCH_OPTIONS; every log line and, last, the reports with the skipped and failed
 * outcomes go back on stdout as JSON lines (K8sWorkerLine). SIGTERM stops what it started.
 */
import type { BenchOptions } from './args';
import { K8S_WORKER_OPTIONS_ENV, type K8sWorkerLine, k8sGroupHere } from './convergence-run';
import { Resources } from './resources';
import type { Outcome } from './unavailable';

function send(line: K8sWorkerLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const options = JSON.parse(process.env[K8S_WORKER_OPTIONS_ENV] ?? 'null') as BenchOptions | null;
  if (!options) throw new Error(`${K8S_WORKER_OPTIONS_ENV} is not set`);
  const resources = new Resources();
  const log = (line: string) => send({ log: line });
  process.once('SIGTERM', () => {
    void resources.stopAll(log).finally(() => process.exit(143));
  });
  const skipped: Outcome[] = [];
  const failed: Outcome[] = [];
  try {
    const reports = await k8sGroupHere({ options, log, resources }, skipped, failed);
    send({ reports, skipped, failed });
  } finally {
    await resources.stopAll(log);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `convergence-k8s worker: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  },
);
