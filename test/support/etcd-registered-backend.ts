/**
 * A backend that registers itself in etcd, as a child process: a grpc-js Greeter server on
 * `host:port` (port 0: any) registered with `registerEndpoint()` under a lease. It prints one JSON
 * line `{"address","key","leaseId","pid"}` once registered. On SIGTERM it deregisters (the key
 * goes first), prints `{"deregisteredAt": <Date.now()>}`, waits `drainDelayMs` for clients to
 * see the deletion, then shuts the server down gracefully. Killed with SIGKILL, its key stays
 * until the lease expires — which is what tests of crashed servers need.
 *
 *   node etcd-registered-backend.js '{"etcd":"127.0.0.1:2379","service":"services/x","host":"127.0.0.2","name":"b1","ttlSeconds":2}'
 */
import * as grpc from '@grpc/grpc-js';
import { registerEndpoint } from '@grpc-lb/resolver-etcd';
import {
  GREETER_SERVICE,
  type HelloReply,
  type HelloRequest,
  loadServiceConstructor,
} from '../harness/protos';

export interface RegisteredBackendConfig {
  readonly etcd: string;
  readonly service: string;
  readonly host: string;
  readonly port?: number;
  readonly name: string;
  readonly ttlSeconds: number;
  readonly labels?: Record<string, string>;
  /** Between deregistering and shutting down, on SIGTERM (default 0). */
  readonly drainDelayMs?: number;
}

export interface RegisteredBackendReady {
  readonly address: string;
  readonly key: string;
  readonly leaseId: string;
  readonly pid: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as RegisteredBackendConfig;
  const server = new grpc.Server();
  const labels = config.labels ?? {};
  let address = '';
  server.addService(loadServiceConstructor('greeter.proto', GREETER_SERVICE).service, {
    SayHello(
      call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
      callback: grpc.sendUnaryData<HelloReply>,
    ) {
      callback(null, {
        message: `Hello ${call.request.name}`,
        backend: config.name,
        address,
        labels,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${config.host}:${config.port ?? 0}`,
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    );
  });
  address = `${config.host}:${port}`;
  const registration = await registerEndpoint({
    endpoints: config.etcd,
    service: config.service,
    host: config.host,
    port,
    ttlSeconds: config.ttlSeconds,
    labels,
    startTimeoutMs: 10_000,
  });
  const ready: RegisteredBackendReady = {
    address,
    key: registration.key,
    leaseId: registration.leaseId ?? '',
    pid: process.pid,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  process.once('SIGTERM', () => {
    void registration
      .deregister()
      .then(() => process.stdout.write(`${JSON.stringify({ deregisteredAt: Date.now() })}\n`))
      .catch((error: unknown) => console.error(error))
      .then(() => new Promise((resolve) => setTimeout(resolve, config.drainDelayMs ?? 0)))
      .finally(() => server.tryShutdown(() => process.exit(0)));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
