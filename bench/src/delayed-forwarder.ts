/**
 * A TCP forwarder on 127.0.0.1 whose connections reach their upstream only after a fixed delay.
 * The client's TCP connect completes at once, but nothing comes back until the delay has passed —
 * the server's HTTP/2 SETTINGS included, which is when grpc-js counts a connection READY. Several
 * of them with different delays make the backends' connections complete at different times, as
 * they do when the backends sit at different network distances or a TLS handshake takes a while;
 * on loopback they all complete within the same moment.
 */
import * as net from 'node:net';

/** Runs `fn` after `ms`; returns a function that cancels it. */
export type Wait = (ms: number, fn: () => void) => () => void;

const timerWait: Wait = (ms, fn) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

export interface ForwarderOptions {
  upstream: { host: string; port: number };
  delayMs: number;
  /** How the delay is waited (default: an unref'd timer); tests pass their own. */
  wait?: Wait;
}

export class DelayedForwarder {
  private readonly sockets = new Set<net.Socket>();
  private readonly cancels = new Set<() => void>();

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static start(options: ForwarderOptions): Promise<DelayedForwarder> {
    const wait = options.wait ?? timerWait;
    const server = net.createServer();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : 0;
        const forwarder = new DelayedForwarder(server, '127.0.0.1', port);
        server.on('connection', (socket) => forwarder.accept(socket, options, wait));
        resolve(forwarder);
      });
    });
  }

  private accept(client: net.Socket, options: ForwarderOptions, wait: Wait): void {
    this.sockets.add(client);
    client.setNoDelay(true);
    // What the client sends meanwhile waits in the socket until the upstream is connected.
    client.pause();
    let upstream: net.Socket | undefined;
    const cancel = wait(options.delayMs, () => {
      this.cancels.delete(cancel);
      if (client.destroyed) return;
      const socket = net.connect(options.upstream.port, options.upstream.host);
      upstream = socket;
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.once('connect', () => {
        client.pipe(socket);
        socket.pipe(client);
      });
      socket.on('error', () => client.destroy());
      socket.once('close', () => {
        this.sockets.delete(socket);
        client.destroy();
      });
    });
    this.cancels.add(cancel);
    client.on('error', () => upstream?.destroy());
    client.once('close', () => {
      this.sockets.delete(client);
      cancel();
      this.cancels.delete(cancel);
      upstream?.destroy();
    });
  }

  /** Stops listening and closes every connection, pending or forwarded. */
  close(): Promise<void> {
    for (const cancel of this.cancels) cancel();
    this.cancels.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
