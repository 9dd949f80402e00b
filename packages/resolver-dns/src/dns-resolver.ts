import type { EndpointResolver, ResolutionSink } from '@grpc-lb/core';
import { QueryAbortedError } from './dns-client';
import { DEFAULT_DNS_OPTIONS, type DnsSettings } from './dns-options';
import { lookupTarget, type LookupEnvironment, type LookupOutcome } from './dns-lookup';
import type { DnsTarget } from './dns-target';
import { formatDuration } from './duration';
import { DnsResolutionError } from './errors';
import { holdDownOf, NegativeStreak } from './hold-down';
import { readHosts } from './hosts-file';
import { readResolvConf } from './resolv-conf';

export interface DnsResolverEnvironment {
  readonly resolvConfPath: string;
  /** `undefined`: the hosts file is not consulted. */
  readonly hostsPath: string | undefined;
  /** Resolves the target once; replaceable in tests. */
  readonly lookup?: (target: DnsTarget, env: LookupEnvironment) => Promise<LookupOutcome>;
  readonly now?: () => number;
}

/**
 * One channel's DNS resolver. It decides when to look again — `intervalMs` after each answer, or
 * when the records' TTL runs out (`useTtl`), never sooner than `minIntervalMs` after the last
 * look, and when the channel asks (a connection failed; the core adapter already rate-limits
 * that) — and reports what it found. Once the name has had endpoints, negative answers (NXDOMAIN,
 * no records) are held down (see `hold-down.ts`): reported as errors, so the channel keeps its
 * set, until the name has been missing long enough. Delivery, backoff after errors and keeping
 * the last good set belong to the core adapter.
 */
export class DnsEndpointResolver implements EndpointResolver {
  private sink: ResolutionSink | undefined;
  /** Bumped by start and stop: results of an older run are dropped. */
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private inflight: AbortController | undefined;
  private lastStartedAt = -Infinity;
  private lastSuccessAt: number | undefined;
  private expired = false;
  private rotation = 0;
  private readonly warned = new Set<string>();
  /**
   * Whether the last set delivered had endpoints. Kept across stop and start: the core adapter
   * keeps that set for a channel that wakes up.
   */
  private holdsEndpoints = false;
  private readonly negatives: NegativeStreak;
  private readonly now: () => number;
  private readonly lookup: NonNullable<DnsResolverEnvironment['lookup']>;

  constructor(
    private readonly target: DnsTarget,
    private readonly settings: DnsSettings,
    private readonly env: DnsResolverEnvironment,
  ) {
    this.now = env.now ?? (() => performance.now());
    this.lookup = env.lookup ?? lookupTarget;
    this.negatives = new NegativeStreak(holdDownOf(settings));
  }

  start(sink: ResolutionSink): void {
    this.stop();
    this.sink = sink;
    this.warned.clear();
    this.lastSuccessAt = undefined;
    this.expired = false;
    this.negatives.reset();
    this.resolve();
  }

  refresh(): void {
    if (!this.sink || this.target.kind === 'ip' || this.inflight) return;
    const wait = this.lastStartedAt + this.settings.minIntervalMs - this.now();
    if (wait <= 0) this.resolve();
    else this.schedule(wait, true);
  }

  stop(): void {
    this.generation++;
    this.sink = undefined;
    this.clearTimer();
    this.inflight?.abort();
    this.inflight = undefined;
  }

  /** Whether a timer or a query is pending (for tests and leak checks). */
  get busy(): boolean {
    return this.timer !== undefined || this.inflight !== undefined;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /** Resolve again in `delayMs`; with `onlyIfSooner`, keep an earlier pending timer. */
  private schedule(delayMs: number, onlyIfSooner = false): void {
    const due = this.now() + delayMs;
    if (onlyIfSooner && this.timer && this.timerDue <= due) return;
    this.clearTimer();
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.resolve();
    }, delayMs);
    this.timer.unref();
  }

  private resolve(): void {
    this.clearTimer();
    if (!this.sink) return;
    const generation = this.generation;
    const controller = new AbortController();
    this.inflight = controller;
    this.lastStartedAt = this.now();
    this.run(controller.signal).then(
      (outcome) => {
        if (generation !== this.generation) return;
        this.inflight = undefined;
        this.onOutcome(outcome);
      },
      (error: unknown) => {
        if (generation !== this.generation || error instanceof QueryAbortedError) return;
        this.inflight = undefined;
        this.onFailure(error);
      },
    );
  }

  private async run(signal: AbortSignal): Promise<LookupOutcome> {
    const { target, settings } = this;
    if (target.kind === 'ip' || target.server) {
      return this.lookup(target, {
        servers: target.server ? [target.server] : [],
        search: [],
        ndots: 1,
        hosts: undefined,
        family: settings.family,
        timeoutMs: settings.timeoutMs ?? DEFAULT_DNS_OPTIONS.timeoutMs,
        attempts: settings.attempts ?? DEFAULT_DNS_OPTIONS.attempts,
        firstServer: 0,
        signal,
        unref: true,
      });
    }
    const [{ conf, warnings }, hosts] = await Promise.all([
      readResolvConf(this.env.resolvConfPath),
      this.env.hostsPath === undefined
        ? new Map<string, string[]>()
        : readHosts(this.env.hostsPath),
    ]);
    for (const warning of warnings) this.warn(warning);
    return this.lookup(target, {
      servers: conf.nameservers,
      search: conf.search,
      ndots: conf.ndots,
      hosts,
      family: settings.family,
      timeoutMs: settings.timeoutMs ?? conf.timeoutMs ?? DEFAULT_DNS_OPTIONS.timeoutMs,
      attempts: settings.attempts ?? conf.attempts ?? DEFAULT_DNS_OPTIONS.attempts,
      firstServer: conf.rotate ? this.rotation++ % conf.nameservers.length : 0,
      signal,
      unref: true,
    });
  }

  private warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.sink?.warn(message);
  }

  private onOutcome(outcome: LookupOutcome): void {
    const sink = this.sink;
    if (!sink) return;
    for (const warning of outcome.warnings) this.warn(warning);
    this.lastSuccessAt = this.now();
    this.expired = false;
    const { settings } = this;
    if (outcome.endpoints.length === 0 && this.holdsEndpoints) {
      const verdict = this.negatives.negative(this.now());
      if (!verdict.gone) {
        sink.error(new DnsResolutionError(this.target.name, `${outcome.note}; ${verdict.reason}`));
        // Look again when the hold-down can end, not a whole interval later.
        this.schedule(
          Math.min(settings.intervalMs, Math.max(settings.minIntervalMs, verdict.remainingMs)),
        );
        return;
      }
    }
    this.negatives.reset();
    this.holdsEndpoints = outcome.endpoints.length > 0;
    sink.update({ endpoints: outcome.endpoints, note: outcome.note });
    if (this.target.kind === 'ip') return;
    const delay =
      settings.useTtl && outcome.ttl !== undefined
        ? Math.min(settings.maxIntervalMs, Math.max(settings.minIntervalMs, outcome.ttl * 1000))
        : settings.intervalMs;
    this.schedule(delay);
  }

  private onFailure(error: unknown): void {
    const sink = this.sink;
    if (!sink) return;
    const failure =
      error instanceof DnsResolutionError
        ? error
        : new DnsResolutionError(
            this.target.name,
            `DNS resolution of ${this.target.name} failed: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          );
    const { maxStaleMs } = this.settings;
    const staleFor = this.lastSuccessAt === undefined ? 0 : this.now() - this.lastSuccessAt;
    if (!this.expired && this.lastSuccessAt !== undefined && staleFor >= maxStaleMs) {
      this.expired = true;
      this.holdsEndpoints = false;
      sink.update({
        endpoints: [],
        note: `DNS has failed for ${formatDuration(Math.round(staleFor))}, longer than max_stale ${formatDuration(maxStaleMs)}: ${failure.message}`,
      });
    } else {
      sink.error(failure);
    }
    this.schedule(this.settings.intervalMs);
  }
}
