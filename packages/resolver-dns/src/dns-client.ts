import { randomInt } from 'node:crypto';
import { DnsResolutionError } from './errors';
import { encodeQuery, type DnsQuestion, type DnsResponse } from './dns-message';
import type { DnsServerAddress } from './dns-target';
import { formatServer, tcpExchange, TransportError, udpExchange } from './dns-transport';

export interface QueryOptions {
  readonly servers: readonly DnsServerAddress[];
  /** Per exchange (a UDP try, or the TCP retry after truncation). */
  readonly timeoutMs: number;
  /** Rounds over all servers. */
  readonly attempts: number;
  /** Index of the server to start with (resolv.conf `rotate`); default 0. */
  readonly firstServer?: number;
  readonly signal?: AbortSignal | undefined;
  /** Let the process exit while a query is pending (background re-resolution). */
  readonly unref: boolean;
}

export interface QueryResult {
  readonly response: DnsResponse;
  readonly server: DnsServerAddress;
  readonly transport: 'udp' | 'tcp';
}

/** The query was given up because `signal` aborted (the resolver stopped). */
export class QueryAbortedError extends Error {
  constructor() {
    super('DNS query aborted');
    this.name = 'QueryAbortedError';
  }
}

/**
 * Asks each server in turn, `attempts` rounds, as a stub resolver does: UDP first, TCP when the
 * answer is truncated. NOERROR and NXDOMAIN are answers; SERVFAIL, REFUSED and the other codes,
 * timeouts, network errors and unusable responses move on to the next server. Throws
 * `DnsResolutionError` listing what each server did when none answered.
 */
export async function queryDns(question: DnsQuestion, options: QueryOptions): Promise<QueryResult> {
  const { servers } = options;
  if (servers.length === 0) {
    throw new DnsResolutionError(question.name, `no DNS server to ask for ${question.name}`);
  }
  const failures = new Map<string, string>();
  const first = options.firstServer ?? 0;
  for (let attempt = 0; attempt < options.attempts; attempt++) {
    for (let i = 0; i < servers.length; i++) {
      const server = servers[(first + i) % servers.length]!;
      const where = formatServer(server);
      if (options.signal?.aborted) throw new QueryAbortedError();
      const id = randomInt(0, 0x10000);
      const query = encodeQuery(id, question);
      const expected = { id, question };
      const exchangeOptions = {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        unref: options.unref,
      };
      try {
        let transport: QueryResult['transport'] = 'udp';
        let response = await udpExchange(server, query, expected, exchangeOptions);
        if (response.truncated) {
          transport = 'tcp';
          response = await tcpExchange(server, query, expected, exchangeOptions);
        }
        if (response.rcode === 'NOERROR' || response.rcode === 'NXDOMAIN') {
          return { response, server, transport };
        }
        failures.set(where, `${where} answered ${response.rcode}`);
      } catch (error) {
        if (error instanceof TransportError && error.kind === 'aborted') {
          throw new QueryAbortedError();
        }
        failures.set(where, error instanceof Error ? error.message : String(error));
      }
    }
  }
  const rounds = options.attempts === 1 ? '' : ` (${options.attempts} rounds)`;
  throw new DnsResolutionError(
    question.name,
    `DNS ${question.type} query for ${question.name} failed${rounds}: ${[...failures.values()].join('; ')}`,
  );
}
