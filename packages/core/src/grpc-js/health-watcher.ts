/**
 * Active health checking of one endpoint over its own connection:
 * `grpc.health.v1.Health/Watch` while the subchannel is READY, falling back
 * to periodic `Check` when Watch is UNIMPLEMENTED; UNIMPLEMENTED on both
 * means "no health service: healthy". Errors back off. grpc-js, unlike
 * grpc-go, has no client-side health checking of its own.
 *
 * As in grpc-go, only an answered SERVING is healthy: NOT_SERVING,
 * SERVICE_UNKNOWN (a service name the server does not know), UNKNOWN and
 * Check's NOT_FOUND all mean "not serving". `unknown` means only "no answer
 * yet on this connection", and is bounded: a connection that has not
 * answered within `HEALTH_ANSWER_WAIT_MS` is `overdue` — not serving until
 * an answer comes — so a server that never answers fails calls with a
 * clear message instead of holding them to their deadline.
 */
import type {
  Client,
  ClientReadableStream,
  experimental,
  ServiceError,
  status as Status,
} from '@grpc/grpc-js';
import { Backoff } from '../backoff';
import type { EndpointHealth } from '../observer';
import type { Runtime } from './runtime';

const WATCH = '/grpc.health.v1.Health/Watch';
const CHECK = '/grpc.health.v1.Health/Check';

/** HealthCheckRequest { string service = 1; } by hand: core has no protobuf dependency. */
export function encodeHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  if (name.length === 0) return Buffer.alloc(0);
  const length: number[] = [];
  let n = name.length;
  while (n > 0x7f) {
    length.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  length.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...length]), name]);
}

/** HealthCheckResponse { ServingStatus status = 1; } → the status number (0 UNKNOWN when absent). */
export function decodeHealthResponse(buffer: Buffer): number {
  let status = 0;
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= buffer.length) throw new Error('truncated varint');
      const byte = buffer[i++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
      if (shift > 63) throw new Error('varint too long');
    }
  };
  while (i < buffer.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (wireType === 0) {
      const value = varint();
      if (field === 1) status = value;
    } else if (wireType === 2) {
      const length = varint();
      i += length;
    } else if (wireType === 1) {
      i += 8;
    } else if (wireType === 5) {
      i += 4;
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
    if (i > buffer.length) throw new Error('truncated field');
  }
  return status;
}

/** What a `Health/Watch` stream reports; after `onError` or `onEnd` nothing more arrives. */
export interface HealthStreamHandlers {
  /** One `HealthCheckResponse`: its status number (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN). */
  onStatus(status: number): void;
  /** The stream failed with this gRPC status code. */
  onError(code: Status, details: string): void;
  /** The server ended the stream with OK. */
  onEnd(): void;
}

/**
 * The two health RPCs on one endpoint's connection. The default speaks gRPC
 * over the subchannel's own channel; tests give the balancer a fake
 * (`setHealthClientFactory`) to answer without a server.
 */
export interface HealthClient {
  /** Opens `Health/Watch`; `cancel()` ends it without any further callback. */
  watch(serviceName: string, handlers: HealthStreamHandlers): { cancel(): void };
  /** One `Health/Check` with a deadline (epoch ms); `error` is null on success. */
  check(
    serviceName: string,
    deadline: number,
    done: (error: { code: Status; details: string } | null, status: number) => void,
  ): void;
}

export type HealthClientFactory = (subchannel: experimental.SubchannelInterface) => HealthClient;

/** A health client that calls the endpoint through a channel pinned to its subchannel. */
function grpcHealthClients(rt: Runtime): HealthClientFactory {
  return (subchannel) => {
    let client: Client | undefined;
    const open = (): Client =>
      (client ??= new rt.grpc.Client('health-check', rt.grpc.credentials.createInsecure(), {
        channelOverride: subchannel.getChannel(),
      }));
    return {
      watch(serviceName, handlers) {
        const stream: ClientReadableStream<number> = open().makeServerStreamRequest<Buffer, number>(
          WATCH,
          (request) => request,
          decodeHealthResponse,
          encodeHealthRequest(serviceName),
        );
        let done = false;
        stream.on('data', (status: number) => {
          if (!done) handlers.onStatus(status);
        });
        // A failed stream emits 'error' and then 'status'; one that ended with OK only 'status'.
        stream.on('error', (error: ServiceError) => {
          if (done) return;
          done = true;
          handlers.onError(error.code, error.details);
        });
        stream.on('status', () => {
          if (done) return;
          done = true;
          handlers.onEnd();
        });
        return {
          cancel() {
            done = true;
            stream.cancel();
          },
        };
      },
      check(serviceName, deadline, done) {
        open().makeUnaryRequest<Buffer, number>(
          CHECK,
          (request) => request,
          decodeHealthResponse,
          encodeHealthRequest(serviceName),
          { deadline },
          (error, status) =>
            done(error ? { code: error.code, details: error.details } : null, status ?? 0),
        );
      },
    };
  };
}

const factories = new WeakMap<Runtime, HealthClientFactory>();

/**
 * Health checks of every balancer built on `rt` go through `factory`
 * instead of gRPC calls on the endpoint's connection. For tests (the fake
 * channel kit); a runtime made by `register()` is never given one.
 */
export function setHealthClientFactory(rt: Runtime, factory: HealthClientFactory): void {
  factories.set(rt, factory);
}

function healthClientsOf(rt: Runtime): HealthClientFactory {
  let factory = factories.get(rt);
  if (!factory) {
    factory = grpcHealthClients(rt);
    factories.set(rt, factory);
  }
  return factory;
}

/**
 * How long a new connection may go without a health answer before it counts
 * as not serving: a few round trips of a server that is starting its health
 * service, short of typical call deadlines.
 */
export const HEALTH_ANSWER_WAIT_MS = 5_000;

const SERVING_STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function statusName(status: number): string {
  return SERVING_STATUS_NAMES[status] ?? `status ${status}`;
}

export class HealthWatcher {
  private health: EndpointHealth = 'unknown';
  /** The last answer, as failure messages name it (`NOT_SERVING`, `NOT_FOUND`, …). */
  private answer = '';
  /** Why the last call failed while there is no answer (`Health/Watch failed: …`). */
  private lastFailure = '';
  private isOverdue = false;
  private client: HealthClient | undefined;
  private stream: { cancel(): void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private answerTimer: NodeJS.Timeout | undefined;
  private watchUnimplemented = false;
  /** Tells the callbacks of calls made before the last pause or reconfiguration from current ones. */
  private generation = 0;
  private running = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  private readonly listener = (
    _subchannel: experimental.SubchannelInterface,
    _previous: unknown,
    state: unknown,
  ): void => {
    if (state === this.rt.grpc.connectivityState.READY) {
      this.start();
    } else {
      this.pause();
      // Health belongs to a connection: a new one is unknown until it answers.
      this.forget();
    }
  };

  /**
   * `onChange` is called whenever `current` or `overdue` changes (never
   * from inside the constructor or `reconfigure`).
   */
  constructor(
    private readonly rt: Runtime,
    private readonly subchannel: experimental.SubchannelInterface,
    private serviceName: string,
    private checkIntervalMs: number,
    private readonly onChange: () => void,
    private readonly describe: string,
  ) {
    subchannel.addConnectivityStateListener(this.listener);
    if (subchannel.getConnectivityState() === rt.grpc.connectivityState.READY) this.start();
  }

  get current(): EndpointHealth {
    return this.health;
  }

  /** Connected, and no answer within `HEALTH_ANSWER_WAIT_MS`: counts as not serving. */
  get overdue(): boolean {
    return this.isOverdue;
  }

  /** What the health check said, for failure messages: the answer, or that none came. */
  get detail(): string {
    if (this.health === 'unknown') {
      if (!this.isOverdue) return 'waiting for the first answer';
      const waited = `no answer within ${HEALTH_ANSWER_WAIT_MS / 1000} s`;
      return this.lastFailure ? `${waited} (${this.lastFailure})` : waited;
    }
    return this.answer;
  }

  /**
   * New settings on the same connection: a new service name is a new
   * question (its health is unknown until answered); a new interval applies
   * to the next `Check`.
   */
  reconfigure(serviceName: string, checkIntervalMs: number): void {
    const intervalChanged = checkIntervalMs !== this.checkIntervalMs;
    this.checkIntervalMs = checkIntervalMs;
    if (serviceName !== this.serviceName) {
      this.serviceName = serviceName;
      this.rt.trace(`${this.describe}: health of service "${serviceName}" from now on`);
      const running = this.running;
      this.pause();
      this.forget(false);
      this.backoff.reset();
      if (running) this.start();
    } else if (intervalChanged && this.running && this.watchUnimplemented && this.timer) {
      this.retryLater(() => this.check(), checkIntervalMs);
    }
  }

  /** Stops watching for good: no call, timer or listener is left. */
  destroy(): void {
    this.subchannel.removeConnectivityStateListener(this.listener);
    this.pause();
  }

  /** Back to "no answer": a server without a health service stays so. */
  private forget(notify = true): void {
    this.answer = '';
    this.lastFailure = '';
    const health =
      this.watchUnimplemented && this.health === 'unimplemented' ? 'unimplemented' : 'unknown';
    const changed = health !== this.health || this.isOverdue;
    this.isOverdue = false;
    if (health !== this.health) {
      this.rt.trace(`${this.describe}: health ${this.health} -> ${health}`);
      this.health = health;
    }
    if (changed && notify) this.onChange();
  }

  private answered(health: EndpointHealth, answer: string): void {
    this.answer = answer;
    this.lastFailure = '';
    this.clearAnswerTimer();
    const changed = health !== this.health || this.isOverdue;
    this.isOverdue = false;
    if (!changed) return;
    this.rt.trace(`${this.describe}: health ${this.health} -> ${health} (${answer})`);
    this.health = health;
    this.onChange();
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    this.client ??= healthClientsOf(this.rt)(this.subchannel);
    if (this.health === 'unknown') {
      this.answerTimer = setTimeout(() => {
        this.answerTimer = undefined;
        if (!this.running || this.health !== 'unknown') return;
        this.rt.trace(`${this.describe}: ${this.detail}; not serving until it answers`);
        this.isOverdue = true;
        this.onChange();
      }, HEALTH_ANSWER_WAIT_MS);
      this.answerTimer.unref();
    }
    if (this.watchUnimplemented) this.check();
    else this.watch();
  }

  /** The connection is gone (or the question changed): nothing in flight is heard any more. */
  private pause(): void {
    this.running = false;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.clearAnswerTimer();
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
  }

  private clearAnswerTimer(): void {
    if (this.answerTimer) clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }

  private retryLater(run: () => void, delayMs: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) run();
    }, delayMs);
    this.timer.unref();
  }

  private codeName(code: number): string {
    return this.rt.grpc.status[code] ?? `code ${code}`;
  }

  private watch(): void {
    // The stream's callbacks are heard until the next watch, check or pause.
    const generation = ++this.generation;
    const current = () => this.generation === generation;
    this.stream = this.client!.watch(this.serviceName, {
      onStatus: (status) => {
        if (!current()) return;
        this.backoff.reset();
        this.answered(status === 1 ? 'serving' : 'not_serving', statusName(status));
      },
      onError: (code, details) => {
        if (!current()) return;
        this.stream = undefined;
        if (code === this.rt.grpc.status.UNIMPLEMENTED) {
          this.rt.trace(`${this.describe}: Health/Watch unimplemented; polling Health/Check`);
          this.watchUnimplemented = true;
          this.check();
          return;
        }
        this.lastFailure = `Health/Watch failed: ${this.codeName(code)}: ${details}`;
        const delay = this.backoff.next();
        this.rt.trace(`${this.describe}: ${this.lastFailure}; again in ${delay} ms`);
        this.retryLater(() => this.watch(), delay);
      },
      onEnd: () => {
        // Ended with OK: the server closed the stream; watch again.
        if (!current()) return;
        this.stream = undefined;
        this.retryLater(() => this.watch(), this.backoff.next());
      },
    });
  }

  private check(): void {
    const generation = ++this.generation;
    this.client!.check(
      this.serviceName,
      Date.now() + Math.max(1000, this.checkIntervalMs),
      (error, status) => {
        if (!this.running || this.generation !== generation) return;
        if (error) {
          if (error.code === this.rt.grpc.status.UNIMPLEMENTED) {
            this.rt.trace(`${this.describe}: no health service; treated as healthy`);
            this.answered('unimplemented', 'UNIMPLEMENTED');
            return;
          }
          if (error.code === this.rt.grpc.status.NOT_FOUND) {
            this.answered('not_serving', 'NOT_FOUND');
          } else {
            this.lastFailure = `Health/Check failed: ${this.codeName(error.code)}: ${error.details}`;
          }
          this.retryLater(() => this.check(), this.backoff.next());
          return;
        }
        this.backoff.reset();
        this.answered(status === 1 ? 'serving' : 'not_serving', statusName(status));
        this.retryLater(() => this.check(), this.checkIntervalMs);
      },
    );
  }
}
