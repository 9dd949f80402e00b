/**
 * Entry point of a bench worker process, forked by worker-process.ts for each run so that the load
 * generator has an event loop (and a core, when the scheduler allows) of its own, and every run
 * starts from the same state. It answers exactly one request, then exits.
 *
 * - `load`: builds the client channels for the scenario's target, waits for them to be READY
 *   (unless `coldStart`), drives the load, replies with the raw latencies and counts.
 * - `micro`: runs the in-process pick/update micro benchmarks (forked with --expose-gc).
 * - `fleet`: runs the fleet simulation (fleet-sim.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import { type GreeterClient, loadGreeterService } from '@grpc-lb/test/harness';
import { generateLoad, type UnaryCall } from './load-generator';
import { runFleet } from './fleet-sim';
import { runMicro } from './micro';
import {
  type LoadSpec,
  type RunResult,
  type WorkerMessage,
  isParentMessage,
} from './worker-protocol';

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

function waitForReady(client: GreeterClient, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (error) => {
      if (error) reject(new Error(`channel not READY within ${timeoutMs} ms: ${error.message}`));
      else resolve();
    });
  });
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/**
 * grpc-lb's policies and static: scheme, and the resolver the target needs (loaded only then:
 * the etcd and Kubernetes clients are not small).
 */
async function registerFor(target: string, metrics: boolean): Promise<void> {
  if (metrics) {
    // What a user would have: the SDK's provider with a periodic reader (every second here, more
    // often than an exporter's usual interval, so collection is in the measured window).
    const sdk = await import('@opentelemetry/sdk-metrics');
    const meterProvider = new sdk.MeterProvider({
      readers: [
        new sdk.PeriodicExportingMetricReader({
          exporter: new sdk.InMemoryMetricExporter(sdk.AggregationTemporality.CUMULATIVE),
          exportIntervalMillis: 1000,
        }),
      ],
    });
    register({ grpc, metrics: { meterProvider } });
  } else {
    register({ grpc });
  }
  if (target.startsWith('dns+lb:')) {
    const { registerDns } = await import('@grpc-lb/resolver-dns');
    registerDns({ grpc });
  } else if (target.startsWith('etcd:')) {
    const { registerEtcd } = await import('@grpc-lb/resolver-etcd');
    registerEtcd({ grpc });
  } else if (target.startsWith('k8s:')) {
    // The API server is the one of $KUBECONFIG (set in this worker's environment by the parent).
    const { registerK8s } = await import('@grpc-lb/resolver-k8s');
    registerK8s({ grpc });
  } else if (target.startsWith('consul:')) {
    // The agent is $CONSUL_HTTP_ADDR (set in this worker's environment by the parent).
    const { registerConsul } = await import('@grpc-lb/resolver-consul');
    const address = process.env['CONSUL_HTTP_ADDR'];
    registerConsul({ grpc, ...(address ? { address } : {}) });
  }
}

async function runLoad(spec: LoadSpec): Promise<RunResult> {
  await registerFor(spec.target, spec.metrics === true);
  const Greeter = loadGreeterService();
  const insecure = grpc.credentials.createInsecure();
  // Several channels with the same target would share one connection through grpc-js's global
  // subchannel pool; a local pool gives each its own, like separate client processes.
  const options =
    spec.channels > 1
      ? { ...spec.channelOptions, 'grpc.use_local_subchannel_pool': 1 }
      : spec.channelOptions;
  const clients = Array.from(
    { length: spec.channels },
    () => new Greeter(spec.target, insecure, options),
  );
  try {
    if (!spec.coldStart) {
      await Promise.all(clients.map((client) => waitForReady(client, spec.readyTimeoutMs)));
    }
    const request = { name: 'bench' };
    const calls: UnaryCall[] = clients.map((client) => (done) => {
      client.SayHello(request, { deadline: Date.now() + spec.deadlineMs }, (error, reply) => {
        if (error) done({ code: error.code, details: error.details });
        else done(null, reply?.address);
      });
    });
    let cpuAtStart: NodeJS.CpuUsage | undefined;
    let cpuInWindow = 0;
    const outcome = await generateLoad({
      mode: spec.mode,
      concurrency: spec.concurrency,
      rate: spec.rate,
      count: spec.count,
      durationMs: spec.durationMs,
      warmupMs: spec.warmupMs,
      calls,
      ...(spec.trace ? { trace: true } : {}),
      onWindow: (phase) => {
        if (phase === 'start') cpuAtStart = process.cpuUsage();
        else if (cpuAtStart) cpuInWindow = cpuMs(process.cpuUsage(cpuAtStart));
        void send({ type: 'window', phase, atEpochMs: performance.timeOrigin + performance.now() });
      },
    });
    return {
      scenario: spec.scenario,
      mode: spec.mode,
      latenciesMs: outcome.latenciesMs,
      totalMs: outcome.totalMs,
      statusCounts: outcome.statusCounts,
      perBackend: outcome.perBackend,
      errorSamples: outcome.errorSamples,
      maxSendLagMs: outcome.maxSendLagMs,
      meanSendLagMs: outcome.meanSendLagMs,
      clientCpuMs: cpuInWindow,
      ...(outcome.trace
        ? {
            trace: outcome.trace,
            windowStartEpochMs: performance.timeOrigin + outcome.trace.windowStartedAt,
          }
        : {}),
    };
  } finally {
    for (const client of clients) client.close();
  }
}

async function handle(message: unknown): Promise<void> {
  if (!isParentMessage(message)) {
    await send({ type: 'error', message: `unexpected message ${JSON.stringify(message)}` });
    return;
  }
  try {
    if (message.type === 'load') {
      await send({ type: 'result', result: await runLoad(message.spec) });
    } else if (message.type === 'fleet') {
      const report = await runFleet(message.quick, (line) => void send({ type: 'log', line }));
      await send({ type: 'fleet', report });
    } else {
      const results = await runMicro({
        quick: message.quick,
        log: (line) => void send({ type: 'log', line }),
      });
      await send({ type: 'micro', results });
    }
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    await send({ type: 'error', message: text });
  }
}

// The parent gone (crashed, killed) means nobody wants the result: stop at once.
process.on('disconnect', () => process.exit(0));
process.once('message', (message: unknown) => {
  handle(message).then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
