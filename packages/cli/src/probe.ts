import * as grpc from '@grpc/grpc-js';

import { decodeHealthResponse, encodeHealthRequest } from '@grpc-lb/core';

/**
 * `grpc-lb endpoints --probe`: connect to each endpoint as a channel would (plaintext HTTP/2, or
 * TLS), see which connectivity state it reaches, and ask it one `grpc.health.v1.Health/Check`.
 */

const CHECK = '/grpc.health.v1.Health/Check';

/** The connectivity state an endpoint's connection reached within the probe's timeout. */
export type ProbeState = 'READY' | 'TRANSIENT_FAILURE' | 'CONNECTING' | 'IDLE' | 'SHUTDOWN';

/**
 * What the endpoint's health service answered: its serving status (`SERVING`, `NOT_SERVING`,
 * `SERVICE_UNKNOWN`, `UNKNOWN`), `UNIMPLEMENTED` when it has no health service (a balancer counts
 * it healthy), `ERROR` when the Check failed otherwise (see `error`), or null when the
 * connection never became READY.
 */
export type ProbeHealth =
  'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN' | 'UNIMPLEMENTED' | 'ERROR';

export interface ProbeResult {
  readonly state: ProbeState;
  readonly health: ProbeHealth | null;
  /** From the start of the probe to READY, in ms (null when it never became READY). */
  readonly connectMs: number | null;
  /** The Check's round trip, in ms (null when no Check was answered). */
  readonly checkMs: number | null;
  /** Why the connection is not READY, or why the Check failed; null when neither. */
  readonly error: string | null;
}

export interface ProbeOptions {
  /** The whole probe of one endpoint (connecting and the Check) ends within this many ms. */
  readonly timeoutMs: number;
  /** The service name the Check asks about ("" is the server as a whole). */
  readonly healthService: string;
  /** TLS to the endpoints (default: plaintext). */
  readonly tls?: ProbeTls;
}

export interface ProbeTls {
  /** PEM of the CA(s) the endpoints' certificates are checked against (default: the system's). */
  readonly ca?: Buffer;
  /** The name the certificates must carry, instead of the address dialled (an IP, usually). */
  readonly serverName?: string;
}

/** Whether a balancer would send calls to the endpoint: READY and serving (or no health service). */
export function probeHealthy(result: ProbeResult): boolean {
  return (
    result.state === 'READY' && (result.health === 'SERVING' || result.health === 'UNIMPLEMENTED')
  );
}

const STATE_NAMES: Record<grpc.connectivityState, ProbeState> = {
  [grpc.connectivityState.IDLE]: 'IDLE',
  [grpc.connectivityState.CONNECTING]: 'CONNECTING',
  [grpc.connectivityState.READY]: 'READY',
  [grpc.connectivityState.TRANSIENT_FAILURE]: 'TRANSIENT_FAILURE',
  [grpc.connectivityState.SHUTDOWN]: 'SHUTDOWN',
};

const SERVING_STATUS: readonly ProbeHealth[] = [
  'UNKNOWN',
  'SERVING',
  'NOT_SERVING',
  'SERVICE_UNKNOWN',
];

function ms(since: number): number {
  return Math.round((performance.now() - since) * 10) / 10;
}

/**
 * grpc-js's reason for a failed call, shortened: the connection's last error alone when there is
 * one (`connect ECONNREFUSED 127.0.0.9:1`), without the empty resolution note it appends.
 */
function reason(details: string): string {
  const text = details.replace(/\.?\s*Resolution note:\s*$/, '').trim();
  const last = /Last error: (?:Error: )?(.+)$/.exec(text);
  return last === null ? text : last[1]!;
}

/**
 * A TLS connection's failure in words an operator can act on: the name check and the chain check
 * said plainly, with the option that fixes each when it was not given.
 */
function tlsReason(why: string, address: string, tls: ProbeTls): string {
  if (/ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames/.test(why)) {
    const host = tls.serverName ?? address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const hint =
      tls.serverName === undefined ? ' (give a name it carries with --probe-server-name)' : '';
    return `TLS: the endpoint's certificate does not name ${host}${hint}`;
  }
  if (/wrong version number|packet length too long|http request/i.test(why)) {
    return 'TLS: the endpoint does not answer in TLS (plaintext only?)';
  }
  if (/certificate|self[- ]signed|issuer/i.test(why)) {
    const hint = tls.ca === undefined ? ' (give its CA with --probe-cacert)' : '';
    return `TLS: the endpoint's certificate is not trusted: ${why}${hint}`;
  }
  return why;
}

/**
 * Waits until the channel is READY or has failed (TRANSIENT_FAILURE), or `deadline` (epoch ms)
 * passes; returns the state it is in then.
 */
async function settle(
  channel: ReturnType<grpc.Client['getChannel']>,
  deadline: number,
): Promise<grpc.connectivityState> {
  let state = channel.getConnectivityState(true);
  while (
    state !== grpc.connectivityState.READY &&
    state !== grpc.connectivityState.TRANSIENT_FAILURE &&
    state !== grpc.connectivityState.SHUTDOWN
  ) {
    const changed = await new Promise<boolean>((resolve) => {
      channel.watchConnectivityState(state, deadline, (error) => resolve(error === undefined));
    });
    if (!changed) break;
    state = channel.getConnectivityState(false);
  }
  return state;
}

/**
 * Probes one endpoint (`host:port`): a connection of its own (no subchannel shared with anything
 * else), closed before this resolves. Never rejects: every failure is in the result.
 */
export async function probeEndpoint(address: string, options: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  const deadline = Date.now() + options.timeoutMs;
  const { tls } = options;
  let client: grpc.Client | undefined;
  try {
    const credentials =
      tls === undefined
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(tls.ca ?? null);
    client = new grpc.Client(address, credentials, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.enable_retries': 0,
      'grpc.service_config_disable_resolution': 1,
      'grpc.enable_channelz': 0,
      ...(tls?.serverName === undefined
        ? {}
        : {
            'grpc.ssl_target_name_override': tls.serverName,
            'grpc.default_authority': tls.serverName,
          }),
    });
    const state = await settle(client.getChannel(), deadline);
    const connectMs = state === grpc.connectivityState.READY ? ms(started) : null;
    // The Check runs in every state: on a connection that failed it fails at once, with the
    // reason (UNAVAILABLE "… Last error: connect ECONNREFUSED …").
    const checkStarted = performance.now();
    const answer = await new Promise<{ code: grpc.status; details: string; status: number }>(
      (resolve) => {
        client!.makeUnaryRequest<Buffer, number>(
          CHECK,
          (request) => request,
          decodeHealthResponse,
          encodeHealthRequest(options.healthService),
          { deadline: Math.max(deadline, Date.now() + 1) },
          (error, status) =>
            resolve(
              error
                ? { code: error.code, details: error.details, status: 0 }
                : { code: grpc.status.OK, details: '', status: status ?? 0 },
            ),
        );
      },
    );
    const checkMs = ms(checkStarted);
    const seconds = `${options.timeoutMs / 1000} s`;
    if (state !== grpc.connectivityState.READY) {
      const name = STATE_NAMES[state];
      const why =
        state !== grpc.connectivityState.TRANSIENT_FAILURE || answer.details === ''
          ? `no connection within ${seconds} (still ${name})`
          : tls === undefined
            ? reason(answer.details)
            : tlsReason(reason(answer.details), address, tls);
      return { state: name, health: null, connectMs: null, checkMs: null, error: why };
    }
    if (answer.code === grpc.status.OK) {
      return {
        state: 'READY',
        health: SERVING_STATUS[answer.status] ?? 'UNKNOWN',
        connectMs,
        checkMs,
        error: null,
      };
    }
    if (answer.code === grpc.status.UNIMPLEMENTED) {
      return { state: 'READY', health: 'UNIMPLEMENTED', connectMs, checkMs, error: null };
    }
    if (answer.code === grpc.status.NOT_FOUND) {
      // Check's answer for a service name the server does not know (Watch's SERVICE_UNKNOWN).
      return { state: 'READY', health: 'SERVICE_UNKNOWN', connectMs, checkMs, error: null };
    }
    const why =
      answer.code === grpc.status.DEADLINE_EXCEEDED
        ? `Health/Check: no answer within ${seconds}`
        : `Health/Check: ${grpc.status[answer.code]}: ${reason(answer.details)}`;
    return { state: 'READY', health: 'ERROR', connectMs, checkMs: null, error: why };
  } catch (error) {
    // A target grpc-js will not take (it checks it when the client is made).
    return {
      state: 'TRANSIENT_FAILURE',
      health: null,
      connectMs: null,
      checkMs: null,
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    client?.close();
  }
}

/**
 * Runs `task` on every item, at most `concurrency` at once, and returns the results in the
 * items' order. `done` is told after each one (for a progress line).
 */
export async function mapLimited<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T) => Promise<R>,
  done: (count: number) => void = () => {},
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let finished = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
      done(++finished);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
