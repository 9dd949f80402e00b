/**
 * Entry point of one backend child process, started by backends.ts with `child_process.fork`.
 *
 * Serves grpclb.test.Greeter and grpc.health.v1.Health with grpc-js. The TCP listener is our own
 * `net.Server` whose sockets are handed to grpc-js through a connection injector, so connections
 * are counted exactly and a graceful stop can close the listener before draining sessions.
 * Faults (failures, delay, hang, health status) are switched by IPC commands from the parent.
 */
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  BACKEND_CONFIG_ENV,
  type BackendCommand,
  type BackendStats,
  type ChildMessage,
  type CommandResults,
  isBackendRequest,
  parseBackendConfig,
} from './protocol';
import {
  GREETER_SERVICE,
  HEALTH_SERVICE,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthStatus,
  type HelloReply,
  type HelloRequest,
  loadServiceConstructor,
} from './protos';

type GreeterMethod = 'SayHello' | 'SayGoodbye';

const config = parseBackendConfig(process.env[BACKEND_CONFIG_ENV]);

const FAREWELLS: Record<string, string> = { Hello: 'Goodbye', Bonjour: 'Au revoir', Hola: 'Adiós' };
const MAX_PEERS = 1000;

function send(message: ChildMessage, then?: () => void): void {
  if (!process.send || !process.connected) {
    then?.();
    return;
  }
  // The callback also fires on a send error (parent gone); there is nobody left to tell.
  process.send(message, undefined, {}, () => then?.());
}

// ---------------------------------------------------------------------------------------------
// Counters

const stats = {
  calls: { SayHello: 0, SayGoodbye: 0 },
  failedCalls: 0,
  healthCalls: { Check: 0, Watch: 0 },
  connectionsAccepted: 0,
  peers: new Set<string>(),
};

function snapshot(): BackendStats {
  return {
    calls: { ...stats.calls },
    totalCalls: stats.calls.SayHello + stats.calls.SayGoodbye,
    failedCalls: stats.failedCalls,
    inFlight: inFlight.size,
    healthCalls: { ...stats.healthCalls },
    watchers: [...watchers.values()].reduce((n, set) => n + set.size, 0),
    connectionsAccepted: stats.connectionsAccepted,
    connectionsOpen: openSockets.size,
    peers: [...stats.peers],
  };
}

function resetStats(): void {
  stats.calls = { SayHello: 0, SayGoodbye: 0 };
  stats.failedCalls = 0;
  stats.healthCalls = { Check: 0, Watch: 0 };
  stats.connectionsAccepted = 0;
  stats.peers.clear();
}

// ---------------------------------------------------------------------------------------------
// Faults

let failRate = 0;
let failCode: number = grpc.status.UNAVAILABLE;
// Error diffusion instead of randomness: of n consecutive calls, floor(n·rate) or ceil(n·rate)
// fail, evenly spread, so a test can assert exact shares without flakiness.
let failAccumulator = 0;
let delayMs = 0;
let hanging = false;

function nextFailure(): number | null {
  if (failRate <= 0) return null;
  failAccumulator += failRate;
  if (failAccumulator >= 1 - 1e-9) {
    failAccumulator -= 1;
    return failCode;
  }
  return null;
}

interface PendingCall {
  /** Starts the (possibly delayed) answer; used when a hang is released. */
  release(): void;
  /** Forgets the call without answering (client cancelled or deadline passed). */
  drop(): void;
}

const inFlight = new Set<PendingCall>();
const held = new Set<PendingCall>();
let wakeWaiters: (() => void)[] = [];

/** Re-checks every whenEmpty() condition; called whenever a call or a connection ends. */
function wake(): void {
  const waiters = wakeWaiters;
  wakeWaiters = [];
  for (const waiter of waiters) waiter();
}

/** Resolves when `isEmpty()` holds, or after `timeoutMs` regardless. */
function whenEmpty(isEmpty: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, timeoutMs));
    const check = (): void => {
      if (isEmpty()) {
        clearTimeout(timer);
        resolve();
      } else {
        wakeWaiters.push(check);
      }
    };
    check();
  });
}

function callSettled(call: PendingCall): void {
  inFlight.delete(call);
  held.delete(call);
  wake();
}

function setHang(on: boolean): void {
  hanging = on;
  if (!on) {
    const released = [...held];
    held.clear();
    for (const call of released) call.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Greeter

const address = (port: number): string => `${config.host}:${port}`;
let boundPort = config.port;

function handleGreeter(
  method: GreeterMethod,
  call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
  callback: grpc.sendUnaryData<HelloReply>,
): void {
  stats.calls[method] += 1;
  const peer = call.getPeer();
  if (stats.peers.size < MAX_PEERS) stats.peers.add(peer);

  const failure = nextFailure();
  const callDelayMs = delayMs;
  const word = method === 'SayHello' ? config.greeting : (FAREWELLS[config.greeting] ?? 'Goodbye');
  const reply: HelloReply = {
    message: `${word} ${call.request.name}`,
    backend: config.name,
    address: address(boundPort),
    labels: config.labels,
  };

  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const answer = (): void => {
    if (settled) return;
    settled = true;
    callSettled(pending);
    if (failure !== null) {
      stats.failedCalls += 1;
      callback({ code: failure, details: `${config.name}: injected failure` });
    } else {
      callback(null, reply);
    }
  };
  const pending: PendingCall = {
    release() {
      if (settled) return;
      if (callDelayMs > 0) timer = setTimeout(answer, callDelayMs);
      else answer();
    },
    drop() {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      callSettled(pending);
    },
  };
  inFlight.add(pending);
  call.on('cancelled', () => pending.drop());
  if (hanging) held.add(pending);
  else pending.release();
}

// ---------------------------------------------------------------------------------------------
// Health (grpc.health.v1): '' is the server as a whole. A service absent from the map is unknown:
// Check answers NOT_FOUND and Watch sends SERVICE_UNKNOWN, as the protocol specifies.

const health = new Map<string, Exclude<HealthStatus, 'SERVICE_UNKNOWN'>>([
  ['', 'SERVING'],
  [GREETER_SERVICE, 'SERVING'],
]);
const watchers = new Map<
  string,
  Set<grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>
>();

const effectiveHealth = (service: string): HealthStatus => health.get(service) ?? 'SERVICE_UNKNOWN';

function setHealth(service: string, status: HealthStatus): void {
  const before = effectiveHealth(service);
  if (status === 'SERVICE_UNKNOWN') health.delete(service);
  else health.set(service, status);
  if (status === before) return;
  for (const stream of watchers.get(service) ?? []) stream.write({ status });
}

const healthImplementation: grpc.UntypedServiceImplementation = {
  Check(
    call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    callback: grpc.sendUnaryData<HealthCheckResponse>,
  ) {
    stats.healthCalls.Check += 1;
    const status = health.get(call.request.service);
    if (status === undefined) {
      callback({
        code: grpc.status.NOT_FOUND,
        details: `unknown service "${call.request.service}"`,
      });
    } else {
      callback(null, { status });
    }
  },
  Watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
    stats.healthCalls.Watch += 1;
    if (config.healthService === 'check-only') {
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: 'Watch is not implemented here',
      });
      return;
    }
    const service = call.request.service;
    let set = watchers.get(service);
    if (set === undefined) {
      set = new Set();
      watchers.set(service, set);
    }
    call.write({ status: effectiveHealth(service) });
    if (stopping) {
      // A watch open during shutdown would hold the connection until the grace period ends.
      call.end();
      return;
    }
    set.add(call);
    call.on('cancelled', () => watchers.get(service)?.delete(call));
  },
};

// ---------------------------------------------------------------------------------------------
// Server and listener

const server = new grpc.Server();
server.addService(loadServiceConstructor('greeter.proto', GREETER_SERVICE).service, {
  SayHello: (
    call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
    cb: grpc.sendUnaryData<HelloReply>,
  ) => handleGreeter('SayHello', call, cb),
  SayGoodbye: (
    call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
    cb: grpc.sendUnaryData<HelloReply>,
  ) => handleGreeter('SayGoodbye', call, cb),
});
if (config.healthService !== 'none') {
  server.addService(
    loadServiceConstructor('health.proto', HEALTH_SERVICE).service,
    healthImplementation,
  );
}

const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

const openSockets = new Set<net.Socket>();

const listener = net.createServer((socket) => {
  stats.connectionsAccepted += 1;
  openSockets.add(socket);
  socket.once('close', () => {
    openSockets.delete(socket);
    wake();
  });
  injector.injectConnection(socket);
});

let stopping = false;

/**
 * Graceful stop, in the order a well-behaved server terminates: stop accepting connections,
 * report NOT_SERVING, send GOAWAY on every connection, end health watches (they never finish by
 * themselves), let in-flight calls finish, then wait for the connections to close (http2 closes a
 * drained session once its last stream is done, after the last bytes are written) and exit 0.
 * After `graceMs` the remaining sessions are cancelled by grpc-js.
 */
async function stopGracefully(graceMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const deadline = Date.now() + graceMs;
  listener.close();
  for (const service of health.keys()) setHealth(service, 'NOT_SERVING');
  injector.drain(graceMs);
  for (const set of watchers.values()) {
    for (const stream of set) stream.end();
    set.clear();
  }
  await whenEmpty(() => inFlight.size === 0, deadline - Date.now());
  // Sessions cancelled at the deadline still need a moment to flush their RST_STREAM frames.
  await whenEmpty(() => openSockets.size === 0, deadline - Date.now() + 500);
  server.forceShutdown();
  for (const socket of openSockets) socket.destroy();
  process.exit(0);
}

function runCommand(command: BackendCommand): CommandResults[BackendCommand['cmd']] {
  switch (command.cmd) {
    case 'ping':
      return { pid: process.pid };
    case 'stats':
      return snapshot();
    case 'resetStats':
      resetStats();
      return null;
    case 'setFailRate':
      failRate = command.rate;
      failCode = command.code;
      failAccumulator = 0;
      return null;
    case 'setDelay':
      delayMs = command.ms;
      return null;
    case 'hang':
      setHang(command.on);
      return null;
    case 'setHealth':
      setHealth(command.service, command.status);
      return null;
    case 'stop':
      stopGracefully(command.graceMs).catch(fatal);
      return null;
  }
}

function fatal(error: unknown): void {
  console.error(`${config.name}: fatal:`, error);
  process.exit(1);
}

process.on('message', (message: unknown) => {
  if (!isBackendRequest(message)) {
    const id = typeof message === 'object' && message !== null && 'id' in message ? message.id : -1;
    send({
      type: 'reply',
      id: typeof id === 'number' ? id : -1,
      ok: false,
      error: 'malformed command',
    });
    return;
  }
  try {
    send({ type: 'reply', id: message.id, ok: true, result: runCommand(message) });
  } catch (error) {
    send({ type: 'reply', id: message.id, ok: false, error: String(error) });
  }
});

// The parent is gone (finished or crashed): never outlive it.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  stopGracefully(config.sigtermGraceMs).catch(fatal);
});

listener.once('error', (error: NodeJS.ErrnoException) => {
  send({ type: 'listenError', code: error.code ?? 'UNKNOWN', message: error.message }, () =>
    process.exit(3),
  );
});
listener.listen({ host: config.host, port: config.port }, () => {
  const bound = listener.address();
  if (bound === null || typeof bound === 'string') {
    fatal(new Error(`unexpected listener address ${String(bound)}`));
    return;
  }
  boundPort = bound.port;
  listener.on('error', fatal);
  send({ type: 'listening', host: config.host, port: bound.port });
});
