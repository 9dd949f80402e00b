/**
 * Active health checking of one endpoint over its own connection:
 * `grpc.health.v1.Health/Watch` while the subchannel is READY, falling back
 * to periodic `Check` when Watch is UNIMPLEMENTED; UNIMPLEMENTED on both
 * means "no health service: healthy". Errors back off. grpc-js has no
 * client-side health checking, and grpc-go's does not work with round_robin.
 */
import type { experimental, ClientReadableStream, ServiceError } from '@grpc/grpc-js';
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

function toHealth(status: number): EndpointHealth {
  return status === 1 ? 'serving' : status === 2 ? 'not_serving' : 'unknown';
}

export class HealthWatcher {
  private health: EndpointHealth = 'unknown';
  private client: import('@grpc/grpc-js').Client | undefined;
  private stream: ClientReadableStream<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watchUnimplemented = false;
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
      this.set(
        this.watchUnimplemented && this.health === 'unimplemented' ? 'unimplemented' : 'unknown',
      );
    }
  };

  constructor(
    private readonly rt: Runtime,
    private readonly subchannel: experimental.SubchannelInterface,
    private readonly serviceName: string,
    private readonly checkIntervalMs: number,
    private readonly onChange: (health: EndpointHealth) => void,
    private readonly describe: string,
  ) {
    subchannel.addConnectivityStateListener(this.listener);
    if (subchannel.getConnectivityState() === rt.grpc.connectivityState.READY) this.start();
  }

  get current(): EndpointHealth {
    return this.health;
  }

  /** Stops watching for good: no call, timer or listener is left. */
  destroy(): void {
    this.subchannel.removeConnectivityStateListener(this.listener);
    this.pause();
  }

  private set(health: EndpointHealth): void {
    if (health === this.health) return;
    this.rt.trace(`${this.describe}: health ${this.health} -> ${health}`);
    this.health = health;
    this.onChange(health);
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    this.client ??= new this.rt.grpc.Client(
      'health-check',
      this.rt.grpc.credentials.createInsecure(),
      {
        channelOverride: this.subchannel.getChannel(),
      },
    );
    if (this.watchUnimplemented) this.check();
    else this.watch();
  }

  /** The connection is gone: its health is unknown until it is READY again. */
  private pause(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
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

  private watch(): void {
    const client = this.client!;
    const stream = client.makeServerStreamRequest<Buffer, number>(
      WATCH,
      (request) => request,
      decodeHealthResponse,
      encodeHealthRequest(this.serviceName),
    );
    this.stream = stream;
    stream.on('data', (status: number) => {
      this.backoff.reset();
      this.set(toHealth(status));
    });
    stream.on('error', (error: ServiceError) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (error.code === this.rt.grpc.status.UNIMPLEMENTED) {
        this.rt.trace(`${this.describe}: Health/Watch unimplemented; polling Health/Check`);
        this.watchUnimplemented = true;
        this.check();
        return;
      }
      if (error.code === this.rt.grpc.status.CANCELLED && !this.running) return;
      const delay = this.backoff.next();
      this.rt.trace(
        `${this.describe}: Health/Watch failed (${error.code} ${error.details}); again in ${delay} ms`,
      );
      this.retryLater(() => this.watch(), delay);
    });
    stream.on('status', () => {
      // Ended with OK: the server closed the stream; watch again.
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.retryLater(() => this.watch(), this.backoff.next());
    });
  }

  private check(): void {
    const client = this.client!;
    client.makeUnaryRequest<Buffer, number>(
      CHECK,
      (request) => request,
      decodeHealthResponse,
      encodeHealthRequest(this.serviceName),
      { deadline: Date.now() + Math.max(1000, this.checkIntervalMs) },
      (error, status) => {
        if (!this.running) return;
        if (error) {
          if (error.code === this.rt.grpc.status.UNIMPLEMENTED) {
            this.rt.trace(`${this.describe}: no health service; treated as healthy`);
            this.set('unimplemented');
            return;
          }
          this.set(error.code === this.rt.grpc.status.NOT_FOUND ? 'not_serving' : this.health);
          this.retryLater(() => this.check(), this.backoff.next());
          return;
        }
        this.backoff.reset();
        this.set(toHealth(status ?? 0));
        this.retryLater(() => this.check(), this.checkIntervalMs);
      },
    );
  }
}
