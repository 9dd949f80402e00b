/**
 * One query, one exchange: a fresh UDP socket (a new random source port each time) connected to
 * the server, or a TCP connection when the UDP answer was truncated. Sockets live only for the
 * exchange and are closed however it ends: answer, timeout, error or abort.
 */
import * as dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import * as net from 'node:net';
import type { DnsServerAddress } from './dns-target';
import {
  decodeResponse,
  InvalidResponseError,
  type DnsResponse,
  type ExpectedResponse,
} from './dns-message';

export interface ExchangeOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  /** Let the process exit while this exchange is pending (background re-resolution). */
  readonly unref: boolean;
}

export type TransportFailure = 'timeout' | 'network' | 'invalid' | 'aborted';

export class TransportError extends Error {
  readonly kind: TransportFailure;
  constructor(kind: TransportFailure, message: string) {
    super(message);
    this.name = 'TransportError';
    this.kind = kind;
  }
}

/** How many ignored datagrams an error message lists. */
const MAX_REPORTED_IGNORED = 3;

export function formatServer(server: DnsServerAddress): string {
  return isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

function canonicalIp(ip: string): string {
  if (!isIPv6(ip) || ip.includes('%')) return ip.toLowerCase();
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip.toLowerCase();
  }
}

interface Exchange {
  finish(error: Error | undefined, response?: DnsResponse): void;
  readonly done: boolean;
}

/** Shared timeout, abort and cleanup: `run` opens the socket and returns how to close it. */
function exchange(
  options: ExchangeOptions,
  what: string,
  run: (x: Exchange) => () => void,
): Promise<DnsResponse> {
  return new Promise<DnsResponse>((resolve, reject) => {
    let done = false;
    let close: (() => void) | undefined;
    const onAbort = (): void => x.finish(new TransportError('aborted', `${what}: aborted`));
    const timer = setTimeout(() => {
      x.finish(new TransportError('timeout', `${what}: no answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    if (options.unref) timer.unref();
    const x: Exchange = {
      get done() {
        return done;
      },
      finish(error, response) {
        if (done) return;
        done = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        try {
          close?.();
        } catch {
          // Already closed by the error that ended the exchange.
        }
        if (error) reject(error);
        else resolve(response!);
      },
    };
    if (options.signal?.aborted) {
      x.finish(new TransportError('aborted', `${what}: aborted`));
      return;
    }
    options.signal?.addEventListener('abort', onAbort);
    try {
      close = run(x);
    } catch (error) {
      x.finish(
        new TransportError(
          'network',
          `${what}: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
    if (done) {
      // `run` finished synchronously, before `close` was known.
      try {
        close?.();
      } catch {
        // Nothing was open.
      }
    }
  });
}

/**
 * Sends `query` over UDP and waits for a valid answer. Datagrams from another address or port,
 * and answers to another id or question, are ignored (they may be spoofed or stale; the real one
 * can still come) and listed in the timeout error.
 */
export function udpExchange(
  server: DnsServerAddress,
  query: Buffer,
  expected: ExpectedResponse,
  options: ExchangeOptions,
): Promise<DnsResponse> {
  const where = formatServer(server);
  const ignored: string[] = [];
  let ignoredCount = 0;
  const what = `UDP ${expected.question.type} ${expected.question.name} to ${where}`;
  const promise = exchange(options, what, (x) => {
    const socket = dgram.createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    if (options.unref) socket.unref();
    const serverIp = canonicalIp(server.host);
    socket.on('error', (error) => {
      x.finish(new TransportError('network', `${what}: ${error.message}`));
    });
    socket.on('message', (message, rinfo) => {
      let problem: string;
      if (canonicalIp(rinfo.address) !== serverIp || rinfo.port !== server.port) {
        problem = `a datagram from ${rinfo.address}:${rinfo.port}`;
      } else {
        try {
          x.finish(undefined, decodeResponse(message, expected));
          return;
        } catch (error) {
          if (!(error instanceof InvalidResponseError)) {
            x.finish(new TransportError('invalid', `${what}: ${String(error)}`));
            return;
          }
          problem = error.message;
        }
      }
      ignoredCount++;
      if (ignored.length < MAX_REPORTED_IGNORED) ignored.push(problem);
    });
    // The callback also reports a failed connect; by then the exchange may have been aborted.
    socket.connect(server.port, server.host, (...args: unknown[]) => {
      if (x.done) return;
      const error = args[0];
      if (error instanceof Error) {
        x.finish(new TransportError('network', `${what}: ${error.message}`));
        return;
      }
      socket.send(query, (sendError) => {
        if (sendError) x.finish(new TransportError('network', `${what}: ${sendError.message}`));
      });
    });
    return () => socket.close();
  });
  return promise.catch((error: unknown) => {
    if (error instanceof TransportError && error.kind === 'timeout' && ignoredCount > 0) {
      throw new TransportError(
        'invalid',
        `${error.message}; ignored ${ignoredCount} unusable answer(s): ${ignored.join('; ')}`,
      );
    }
    throw error;
  });
}

/** Sends `query` over TCP (2-byte length prefix, RFC 1035 §4.2.2) and reads one answer. */
export function tcpExchange(
  server: DnsServerAddress,
  query: Buffer,
  expected: ExpectedResponse,
  options: ExchangeOptions,
): Promise<DnsResponse> {
  const what = `TCP ${expected.question.type} ${expected.question.name} to ${formatServer(server)}`;
  return exchange(options, what, (x) => {
    const socket = net.connect({ host: server.host, port: server.port });
    if (options.unref) socket.unref();
    socket.setNoDelay(true);
    const chunks: Buffer[] = [];
    let received = 0;
    socket.on('connect', () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      socket.write(framed);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(all);
      const length = all.readUInt16BE(0);
      if (received < 2 + length) return;
      try {
        x.finish(undefined, decodeResponse(all.subarray(2, 2 + length), expected));
      } catch (error) {
        x.finish(
          new TransportError(
            'invalid',
            `${what}: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
      }
    });
    socket.on('error', (error) => {
      x.finish(new TransportError('network', `${what}: ${error.message}`));
    });
    socket.on('close', () => {
      x.finish(new TransportError('network', `${what}: connection closed after ${received} bytes`));
    });
    return () => socket.destroy();
  });
}
