/**
 * What a DNS answer means for a target: the search list, A and AAAA together, CNAME chains, SRV
 * targets, and the line between "nothing there" (an honest empty set) and "could not find out"
 * (an error: the channel keeps what it has).
 */
import { isIP } from 'node:net';
import type { ResolvedEndpoint } from '@grpc-lb/core';
import type { AddressFamily } from './dns-options';
import { QueryAbortedError, queryDns, type QueryOptions, type QueryResult } from './dns-client';
import {
  addressAnswer,
  type DnsQuestion,
  negativeTtl,
  srvAnswer,
  type DnsResponse,
  type FollowedAnswer,
  type QueryType,
  type AddressRecord,
  type SrvRecord,
} from './dns-message';
import type { DnsServerAddress, DnsTarget } from './dns-target';
import { formatServer } from './dns-transport';
import { DnsResolutionError } from './errors';
import { searchCandidates } from './resolv-conf';
import { unusableReason } from './unusable-address';

export interface LookupEnvironment {
  readonly servers: readonly DnsServerAddress[];
  /** Search domains and ndots; ignored for absolute names and when the target names its server. */
  readonly search: readonly string[];
  readonly ndots: number;
  /** hosts(5) entries, consulted first; `undefined` when the target names its own server. */
  readonly hosts: ReadonlyMap<string, readonly string[]> | undefined;
  readonly family: AddressFamily;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly firstServer: number;
  readonly signal: AbortSignal;
  readonly unref: boolean;
  /** Sends one question to the servers (default `queryDns`); replaceable in tests. */
  readonly query?: (question: DnsQuestion, options: QueryOptions) => Promise<QueryResult>;
}

export interface LookupOutcome {
  readonly endpoints: readonly ResolvedEndpoint[];
  /**
   * How long the answer may be believed, in seconds: the smallest TTL of the records used, or
   * the negative-caching TTL of an empty answer. `undefined` when DNS was not asked (hosts file)
   * or did not say.
   */
  readonly ttl: number | undefined;
  /** One line for errors and traces: what was found, for which name, from which server. */
  readonly note: string;
  /** Problems worth an operator's attention that did not fail the lookup. */
  readonly warnings: readonly string[];
}

/** At most this many SRV targets are looked up at once. */
const SRV_TARGET_CONCURRENCY = 8;
/**
 * An answer of more records than this is read on a later turn of the event loop than the one
 * that decoded it, and its endpoints are handed on a turn later again: decoding, reading and
 * applying 4,094 A records in one turn kept calls to healthy backends waiting 20-60 ms.
 */
const LARGE_ANSWER = 512;
const MAX_CNAME_QUERIES = 8;
const LOOPBACK = { ipv4: ['127.0.0.1'], ipv6: ['::1'] } as const;

type Records<T> =
  | { readonly found: true; readonly answer: FollowedAnswer<T>; readonly response: DnsResponse }
  | { readonly found: false; readonly rcode: string; readonly negativeTtl: number | undefined };

type NotFound = Extract<Records<unknown>, { found: false }>;

/**
 * Resolves once the event loop has gone round (its timers and I/O callbacks ran in between);
 * rejects if `signal` aborted meanwhile. Two immediates: one set from an I/O callback runs in the
 * same round, right after it.
 */
async function nextTurn(signal: AbortSignal): Promise<void> {
  for (let hop = 0; hop < 2; hop++) await new Promise((resolve) => setImmediate(resolve));
  if (signal.aborted) throw new QueryAbortedError();
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function familyTypes(family: AddressFamily): ('A' | 'AAAA')[] {
  return family === 'ipv4' ? ['A'] : family === 'ipv6' ? ['AAAA'] : ['A', 'AAAA'];
}

function typesLabel(family: AddressFamily): string {
  return familyTypes(family).join('/');
}

/** Runs `tasks` together; the first failure aborts the others and is thrown. */
async function all<T>(
  parent: AbortSignal,
  tasks: readonly ((signal: AbortSignal) => Promise<T>)[],
): Promise<T[]> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  parent.addEventListener('abort', onAbort);
  try {
    return await Promise.all(tasks.map((task) => task(controller.signal)));
  } catch (error) {
    controller.abort();
    throw error;
  } finally {
    parent.removeEventListener('abort', onAbort);
  }
}

class Lookup {
  readonly warnings: string[] = [];
  private answeredBy: DnsServerAddress | undefined;
  private usedTcp = false;

  constructor(private readonly env: LookupEnvironment) {}

  get via(): string {
    const tcp = this.usedTcp ? ' over TCP' : '';
    return this.answeredBy
      ? `${formatServer(this.answeredBy)}${tcp}`
      : this.env.servers.map(formatServer).join(', ');
  }

  /** Records of `type` for `name`, following CNAME chains the server did not finish. */
  async records<T>(
    name: string,
    type: QueryType,
    signal: AbortSignal,
    pick: (response: DnsResponse, name: string) => FollowedAnswer<T>,
  ): Promise<Records<T>> {
    let current = name;
    for (let hop = 0; ; hop++) {
      const result = await (this.env.query ?? queryDns)(
        { name: current, type },
        {
          servers: this.env.servers,
          timeoutMs: this.env.timeoutMs,
          attempts: this.env.attempts,
          firstServer: this.env.firstServer,
          signal,
          unref: this.env.unref,
        },
      );
      this.answeredBy ??= result.server;
      if (result.transport === 'tcp') this.usedTcp = true;
      const { response } = result;
      if (response.answers.length + response.additionals.length > LARGE_ANSWER) {
        await nextTurn(signal);
      }
      if (response.rcode === 'NXDOMAIN') {
        return { found: false, rcode: 'NXDOMAIN', negativeTtl: negativeTtl(response) };
      }
      const answer = pick(response, current);
      if (answer.records.length > 0) return { found: true, answer, response };
      if (!answer.unresolvedAlias) {
        return { found: false, rcode: 'NODATA', negativeTtl: negativeTtl(response) };
      }
      if (hop + 1 >= MAX_CNAME_QUERIES) {
        throw new DnsResolutionError(
          name,
          `DNS ${type} ${name}: CNAME chain longer than ${MAX_CNAME_QUERIES} queries`,
        );
      }
      current = answer.canonicalName;
    }
  }

  /**
   * A and/or AAAA for `name`, asked together. Unusable addresses are set aside (with a warning
   * each). With both families asked, one that fails while the other found usable addresses is
   * left out with a warning; otherwise a failure is thrown, since the name may still be there.
   */
  async addresses(name: string, signal: AbortSignal, from?: DnsResponse): Promise<Addresses> {
    const types = familyTypes(this.env.family);
    const settled = await Promise.allSettled(
      types.map(async (type): Promise<Records<AddressRecord>> => {
        // SRV answers usually carry their targets' addresses: use them rather than ask again.
        if (from) {
          const extra = addressAnswer(from, name, type, 'additionals');
          if (extra.records.length > 0) return { found: true, answer: extra, response: from };
        }
        return this.records(name, type, signal, (response, n) => addressAnswer(response, n, type));
      }),
    );
    const addresses: string[] = [];
    const unusable: string[] = [];
    const skipped: string[] = [];
    const failed: { type: string; error: unknown }[] = [];
    const answered: string[] = [];
    let ttl: number | undefined;
    const negative: NotFound[] = [];
    for (const [i, result] of settled.entries()) {
      const type = types[i]!;
      if (result.status === 'rejected') {
        if (result.reason instanceof QueryAbortedError) throw result.reason;
        failed.push({ type, error: result.reason });
        continue;
      }
      const records = result.value;
      if (!records.found) {
        negative.push(records);
        continue;
      }
      let usableHere = 0;
      for (const record of records.answer.records) {
        const reason = unusableReason(record.address);
        if (reason === undefined) {
          addresses.push(record.address);
          usableHere++;
          continue;
        }
        unusable.push(`${record.address} (${reason})`);
        skipped.push(`DNS ${type} ${name}: skipped unusable address ${record.address} (${reason})`);
      }
      if (usableHere > 0) {
        answered.push(type);
        ttl = Math.min(ttl ?? Infinity, records.answer.ttl ?? Infinity);
      }
    }
    if (failed.length > 0 && addresses.length === 0) throw failed[0]!.error;
    for (const { type, error } of failed) {
      this.warnings.push(
        `DNS ${type} ${name} failed; using the ${answered.join('/')} records alone: ${messageOf(error)}`,
      );
    }
    if (addresses.length > 0) this.warnings.push(...skipped);
    return { addresses, unusable, ttl: ttl === Infinity ? undefined : ttl, negative };
  }
}

interface Addresses {
  /** Usable addresses. */
  readonly addresses: string[];
  /** Addresses set aside, each with its reason: `0.0.0.0 (unspecified)`. */
  readonly unusable: string[];
  readonly ttl: number | undefined;
  readonly negative: NotFound[];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function emptyReason(results: readonly { rcode: string }[]): string {
  return results.length > 0 && results.every((r) => r.rcode === 'NXDOMAIN')
    ? 'NXDOMAIN'
    : 'no records';
}

function minNegativeTtl(
  results: readonly { negativeTtl: number | undefined }[],
): number | undefined {
  let ttl: number | undefined;
  for (const r of results)
    if (r.negativeTtl !== undefined) ttl = Math.min(ttl ?? Infinity, r.negativeTtl);
  return ttl;
}

function fromStatic(
  target: DnsTarget,
  addresses: readonly string[],
  family: AddressFamily,
  source: string,
): LookupOutcome | undefined {
  const wanted = addresses.filter((a) => {
    const v = isIP(a);
    return family === 'any' || (family === 'ipv4' ? v === 4 : v === 6);
  });
  if (wanted.length === 0) return undefined;
  const usable: string[] = [];
  const unusable: string[] = [];
  for (const address of wanted) {
    const reason = unusableReason(address);
    if (reason === undefined) usable.push(address);
    else unusable.push(`${address} (${reason})`);
  }
  if (usable.length === 0) {
    throw new DnsResolutionError(
      target.name,
      `${target.name} in ${source} has only unusable addresses: ${unusable.join(', ')}`,
    );
  }
  return {
    endpoints: usable.map((host) => ({ host, port: target.port! })),
    ttl: undefined,
    note: `${plural(usable.length, 'endpoint')} for ${target.name} from ${source}`,
    warnings: unusable.map((a) => `${target.name} in ${source}: skipped unusable address ${a}`),
  };
}

async function lookupAddresses(target: DnsTarget, env: LookupEnvironment): Promise<LookupOutcome> {
  const lower = target.name.toLowerCase();
  const hosted = env.hosts?.get(lower);
  if (hosted) {
    const outcome = fromStatic(target, hosted, env.family, 'the hosts file');
    if (outcome) return outcome;
  }
  if (env.hosts && (lower === 'localhost' || lower.endsWith('.localhost'))) {
    // RFC 6761: localhost names are loopback and never sent to a DNS server.
    return fromStatic(
      target,
      [...LOOPBACK.ipv4, ...LOOPBACK.ipv6],
      env.family,
      'RFC 6761 (localhost)',
    )!;
  }
  const lookup = new Lookup(env);
  const candidates = env.hosts
    ? searchCandidates(target.name, target.absolute, env)
    : [target.name.toLowerCase()];
  const negative: NotFound[] = [];
  for (const name of candidates) {
    const result = await lookup.addresses(name, env.signal);
    if (result.addresses.length > 0) {
      if (result.addresses.length > LARGE_ANSWER) await nextTurn(env.signal);
      const port = target.port!;
      return {
        endpoints: result.addresses.map((host) => ({ host, port })),
        ttl: result.ttl,
        note: `${plural(result.addresses.length, 'endpoint')} from DNS ${typesLabel(env.family)} ${name} via ${lookup.via}`,
        warnings: lookup.warnings,
      };
    }
    if (result.unusable.length > 0) {
      // Records exist, so the search stops here; but none can be called: keep the last good set.
      throw new DnsResolutionError(
        name,
        `DNS ${typesLabel(env.family)} ${name} answered only unusable addresses: ${result.unusable.join(', ')} (via ${lookup.via})`,
      );
    }
    negative.push(...result.negative);
  }
  return {
    endpoints: [],
    ttl: minNegativeTtl(negative),
    note: `DNS ${typesLabel(env.family)} ${candidates.join(', ')}: ${emptyReason(negative)} via ${lookup.via}`,
    warnings: lookup.warnings,
  };
}

/** Runs `work` over `items`, at most `limit` at a time, stopping at the first failure. */
async function pooled<T, R>(
  signal: AbortSignal,
  items: readonly T[],
  limit: number,
  work: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await all(
    signal,
    Array.from({ length: Math.min(limit, items.length) }, () => async (child: AbortSignal) => {
      while (next < items.length && !child.aborted) {
        const index = next++;
        results[index] = await work(items[index]!, child);
      }
    }),
  );
  return results;
}

async function lookupSrv(target: DnsTarget, env: LookupEnvironment): Promise<LookupOutcome> {
  const lookup = new Lookup(env);
  const candidates = env.hosts
    ? searchCandidates(target.name, target.absolute, env)
    : [target.name.toLowerCase()];
  const negative: NotFound[] = [];
  for (const name of candidates) {
    const result = await lookup.records(name, 'SRV', env.signal, srvAnswer);
    if (!result.found) {
      negative.push(result);
      continue;
    }
    return srvEndpoints(name, result.answer, result.response, lookup, env);
  }
  return {
    endpoints: [],
    ttl: minNegativeTtl(negative),
    note: `DNS SRV ${candidates.join(', ')}: ${emptyReason(negative)} via ${lookup.via}`,
    warnings: lookup.warnings,
  };
}

type TargetResult =
  | { readonly ok: true; readonly value: Addresses }
  | { readonly ok: false; readonly error: unknown };

/**
 * RFC 2782: the records of the lowest priority value are used; only when none of their targets
 * resolves to a usable address are the next priority's tried, and so on. A target whose lookup
 * failed, or whose addresses are all unusable, is skipped like one with no address; if no target
 * of any priority resolves and one of them failed that way, the lookup fails (the channel keeps
 * what it has) rather than report an empty set.
 */
async function srvEndpoints(
  name: string,
  answer: FollowedAnswer<SrvRecord>,
  response: DnsResponse,
  lookup: Lookup,
  env: LookupEnvironment,
): Promise<LookupOutcome> {
  // RFC 2782: a target of "." means the service is decidedly not available here.
  const usable = answer.records.filter((r) => r.target !== '.' && r.target !== '');
  const withPort = usable.filter((r) => r.port > 0);
  if (withPort.length < usable.length) {
    lookup.warnings.push(
      `SRV ${name}: ${usable.length - withPort.length} record(s) with port 0 skipped`,
    );
  }
  if (withPort.length === 0) {
    return {
      endpoints: [],
      ttl: answer.ttl,
      note: `DNS SRV ${name}: no usable record (target "." or port 0) via ${lookup.via}`,
      warnings: lookup.warnings,
    };
  }
  const priorities = [...new Set(withPort.map((r) => r.priority))].sort((a, b) => a - b);
  /** Per priority tried without success: why each of its targets gave nothing. */
  const unresolved: { priority: number; reasons: string[] }[] = [];
  let failures = false;
  const missing: string[] = [];
  for (const priority of priorities) {
    const group = withPort.filter((r) => r.priority === priority);
    const allZero = group.every((r) => r.weight === 0);
    const targets = [...new Set(group.map((r) => r.target.toLowerCase()))];
    const resolved = await pooled(
      env.signal,
      targets,
      SRV_TARGET_CONCURRENCY,
      async (t, signal): Promise<TargetResult> => {
        try {
          return { ok: true, value: await lookup.addresses(t, signal, response) };
        } catch (error) {
          if (error instanceof QueryAbortedError) throw error;
          return { ok: false, error };
        }
      },
    );
    const byTarget = new Map(targets.map((t, i) => [t, resolved[i]!]));
    const reasons: string[] = [];
    const skipped: string[] = [];
    const groupMissing: string[] = [];
    for (const [target, result] of byTarget) {
      if (!result.ok) {
        failures = true;
        reasons.push(`${target} (${messageOf(result.error)})`);
        skipped.push(
          `SRV ${name}: target ${target} could not be resolved; skipped: ${messageOf(result.error)}`,
        );
      } else if (result.value.addresses.length > 0) {
        continue;
      } else if (result.value.unusable.length > 0) {
        failures = true;
        const list = result.value.unusable.join(', ');
        reasons.push(`${target} (only unusable addresses: ${list})`);
        skipped.push(
          `SRV ${name}: target ${target} has only unusable addresses (${list}); skipped`,
        );
      } else {
        reasons.push(`${target} (no ${typesLabel(env.family)} records)`);
        groupMissing.push(target);
      }
    }
    const endpoints = new Map<string, { host: string; port: number; weight: number }>();
    let ttl = answer.ttl;
    for (const record of group) {
      const result = byTarget.get(record.target.toLowerCase())!;
      if (!result.ok || result.value.addresses.length === 0) continue;
      ttl = Math.min(ttl ?? Infinity, result.value.ttl ?? Infinity);
      const weight = allZero ? 1 : record.weight;
      for (const host of result.value.addresses) {
        const key = `${host.includes(':') ? `[${host}]` : host}:${record.port}`;
        const existing = endpoints.get(key);
        // Two records reaching one address add up, as two entries in a weighted list would.
        if (existing) existing.weight += weight;
        else endpoints.set(key, { host, port: record.port, weight });
      }
    }
    if (endpoints.size === 0) {
      unresolved.push({ priority, reasons });
      missing.push(...groupMissing.filter((t) => !missing.includes(t)));
      continue;
    }
    for (const { priority: p, reasons: why } of unresolved) {
      lookup.warnings.push(
        `SRV ${name}: no target of priority ${p} resolved (${why.join(', ')}); using priority ${priority}`,
      );
    }
    if (groupMissing.length > 0) {
      lookup.warnings.push(
        `SRV ${name}: target(s) ${groupMissing.join(', ')} have no ${typesLabel(env.family)} records; skipped`,
      );
    }
    lookup.warnings.push(...skipped);
    const list = [...endpoints.values()];
    return {
      endpoints: list,
      ttl: ttl === Infinity ? undefined : ttl,
      note: `${plural(list.length, 'endpoint')} from DNS SRV ${name} (${plural(group.length, 'record')}, priority ${priority}) via ${lookup.via}`,
      warnings: lookup.warnings,
    };
  }
  const why = unresolved.map((u) => `priority ${u.priority}: ${u.reasons.join(', ')}`).join('; ');
  if (failures) {
    throw new DnsResolutionError(
      name,
      `DNS SRV ${name}: no target could be resolved (${why}) via ${lookup.via}`,
    );
  }
  lookup.warnings.push(
    `SRV ${name}: target(s) ${missing.join(', ')} have no ${typesLabel(env.family)} records; skipped`,
  );
  return {
    endpoints: [],
    ttl: answer.ttl,
    note: `DNS SRV ${name}: no usable target (${why}) via ${lookup.via}`,
    warnings: lookup.warnings,
  };
}

/** Resolves `target` once. Throws `DnsResolutionError` when DNS could not say what is there. */
export async function lookupTarget(
  target: DnsTarget,
  env: LookupEnvironment,
): Promise<LookupOutcome> {
  switch (target.kind) {
    case 'ip':
      return {
        endpoints: [{ host: target.name, port: target.port! }],
        ttl: undefined,
        note: `the address ${target.authority}`,
        warnings: [],
      };
    case 'address':
      return lookupAddresses(target, env);
    case 'srv':
      return lookupSrv(target, env);
  }
}
