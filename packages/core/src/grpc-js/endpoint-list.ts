/**
 * The resolver adapter's work on each list a resolver pushes: validating
 * every endpoint, dropping repeats, telling whether the list is the set
 * delivered before, and making the grpc-js endpoints the channel is given.
 *
 * Resolvers re-send their whole list on every change (a DNS answer, a
 * Kubernetes EndpointSlice, a Consul catalog), so most of a large list is
 * what came last time. An endpoint that comes again with the same host,
 * port, weight, zone, labels and zone hints is not validated again: the
 * validated endpoint and its grpc-js endpoint object from before are used
 * again, so a 1% change costs a lookup and a few comparisons per endpoint
 * that stayed and full work only for the 1%. Anything that differs (or is
 * not a plain match) goes through `normalizeEndpoint` as before.
 */
import {
  EMPTY_LABELS,
  normalizeEndpoint,
  sameEndpoint,
  sameEndpointSet,
  type NormalizedEndpoint,
} from '../endpoint';
import { errorMessage } from '../errors';
import type { ResolvedEndpoint } from '../resolver-contract';
import { toGrpcEndpoint, type GrpcLbEndpoint } from './endpoint-info';

/** A validated list: its grpc-js endpoints in the resolver's order, one per key. */
export interface EndpointList {
  readonly endpoints: readonly GrpcLbEndpoint[];
  /** Which read of its `EndpointLists` made it (they count up). */
  readonly read: number;
  /** Whether it is the same set as the list read just before it. */
  readonly sameAsLast: boolean;
}

/** Whether `raw` would normalize to exactly `known` (whose host is `raw.host`). */
function unchanged(raw: ResolvedEndpoint, known: NormalizedEndpoint): boolean {
  if (raw.zone !== known.zone) return false;
  const weight = raw.weight;
  if (weight === undefined ? known.weight !== 1 : weight !== known.weight) return false;
  const labels: unknown = raw.labels;
  const knownLabels = known.labels;
  if (labels === undefined) {
    if (knownLabels !== EMPTY_LABELS && Object.keys(knownLabels).length > 0) return false;
  } else {
    if (typeof labels !== 'object' || labels === null) return false;
    const names = Object.keys(labels);
    if (names.length !== Object.keys(knownLabels).length) return false;
    for (const name of names) {
      if (
        !Object.hasOwn(knownLabels, name) ||
        (labels as Record<string, unknown>)[name] !== knownLabels[name]
      ) {
        return false;
      }
    }
  }
  const forZones: unknown = raw.forZones;
  const knownZones = known.forZones;
  if (forZones === undefined || knownZones === undefined) return forZones === knownZones;
  if (!Array.isArray(forZones) || forZones.length !== knownZones.length) return false;
  for (let i = 0; i < forZones.length; i++) {
    if (forZones[i] !== knownZones[i]) return false;
  }
  return true;
}

/** The round of an entry whose endpoint is new or changed since the last read. */
const NEW = -1;

/** One key's endpoint as last read, with the other ports of the same host. */
interface Entry {
  endpoint: GrpcLbEndpoint;
  /** The read that last listed it, or NEW. */
  round: number;
  next: Entry | undefined;
}

export class EndpointLists {
  /** Every endpoint seen recently, by host (chained by port). */
  private byHost = new Map<string, Entry>();
  private entries = 0;
  private round = 0;
  private lastCount = -1;

  /**
   * Validates a resolver's list. An invalid endpoint is skipped and a repeat
   * of a key (the first is kept) dropped, each with a warning.
   */
  read(raw: readonly unknown[], warn: (message: string) => void): EndpointList {
    const round = ++this.round;
    const last = round - 1;
    const endpoints: GrpcLbEndpoint[] = [];
    let changed = 0;
    for (const item of raw) {
      let entry: Entry;
      try {
        entry = this.entryFor(item, round);
      } catch (error) {
        warn(`skipped an endpoint: ${errorMessage(error)}`);
        continue;
      }
      if (entry.round === round) {
        warn(`endpoint ${entry.endpoint.grpcLb.key} listed twice; using the first`);
        continue;
      }
      if (entry.round !== last) changed++;
      entry.round = round;
      endpoints.push(entry.endpoint);
    }
    const list = {
      endpoints,
      read: round,
      sameAsLast: changed === 0 && endpoints.length === this.lastCount,
    };
    this.lastCount = endpoints.length;
    // Endpoints no longer listed are forgotten once they outnumber the listed ones.
    if (this.entries > 2 * endpoints.length + 64) this.forgetAllBut(round);
    return list;
  }

  /**
   * Whether two lists this object read are the same set (order ignored): the
   * same keys, each with the same weight, zone, labels and zone hints.
   */
  same(a: EndpointList, b: EndpointList): boolean {
    if (a === b) return true;
    if (a.endpoints.length !== b.endpoints.length) return false;
    if (b.read === a.read + 1) return b.sameAsLast;
    if (a.read === b.read + 1) return a.sameAsLast;
    return sameEndpointSet(
      a.endpoints.map((e) => e.grpcLb),
      b.endpoints.map((e) => e.grpcLb),
    );
  }

  /**
   * The entry for `item`, whose endpoint is the one from before when it is
   * unchanged (round NEW when it is new or changed); throws if invalid.
   * An entry already listed in `round` is returned as it is (a repeat).
   */
  private entryFor(item: unknown, round: number): Entry {
    const host: unknown =
      typeof item === 'object' && item !== null ? (item as ResolvedEndpoint).host : undefined;
    if (typeof host === 'string') {
      const port = (item as ResolvedEndpoint).port;
      let entry = this.byHost.get(host);
      while (entry !== undefined && entry.endpoint.grpcLb.port !== port) entry = entry.next;
      if (entry !== undefined && unchanged(item as ResolvedEndpoint, entry.endpoint.grpcLb)) {
        return entry;
      }
    }
    const normalized = normalizeEndpoint(item);
    const head = this.byHost.get(normalized.host);
    let entry = head;
    while (entry !== undefined && entry.endpoint.grpcLb.port !== normalized.port) {
      entry = entry.next;
    }
    if (entry === undefined) {
      entry = { endpoint: toGrpcEndpoint(normalized), round: NEW, next: head };
      this.byHost.set(normalized.host, entry);
      this.entries++;
    } else if (entry.round !== round && !sameEndpoint(entry.endpoint.grpcLb, normalized)) {
      entry.endpoint = toGrpcEndpoint(normalized);
      entry.round = NEW;
    }
    return entry;
  }

  private forgetAllBut(round: number): void {
    this.entries = 0;
    for (const [host, head] of this.byHost) {
      let kept: Entry | undefined;
      for (let entry: Entry | undefined = head; entry !== undefined;) {
        const next: Entry | undefined = entry.next;
        if (entry.round === round) {
          entry.next = kept;
          kept = entry;
          this.entries++;
        }
        entry = next;
      }
      if (kept === undefined) this.byHost.delete(host);
      else this.byHost.set(host, kept);
    }
  }
}
