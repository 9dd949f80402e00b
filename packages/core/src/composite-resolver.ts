import { Backoff } from './backoff';
import type { CompositeSource, CompositeTarget } from './composite-target';
import { MAX_WEIGHT, normalizeEndpoint } from './endpoint';
import { errorMessage } from './errors';
import {
  DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  DEFAULT_MAX_REFRESH_BACKOFF_MS,
  DEFAULT_MIN_REFRESH_INTERVAL_MS,
  OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
  OPTION_MIN_REFRESH_INTERVAL_MS,
  OUTAGE_FAST_RETRY_WINDOW_MS,
  OUTAGE_JITTER,
} from './refresh-policy';
import type {
  EndpointResolver,
  Resolution,
  ResolutionSink,
  ResolvedEndpoint,
  ResolverContext,
  ServiceConfigJson,
} from './resolver-contract';

/** The label every endpoint of a composite target carries: the name of its source. */
export const SOURCE_LABEL = 'source';

/**
 * How long the first resolution waits for the slowest source once another has answered. A
 * registry that hangs must not hold the others' endpoints back for longer; one that answers
 * within it joins the first resolution, so a channel does not start on a partial set.
 */
export const FIRST_RESOLUTION_WAIT_MS = 3_000;

function msOption(
  options: Readonly<Record<string, unknown>>,
  name: string,
  fallback: number,
): number {
  const value = options[name];
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
}

interface Child {
  readonly source: CompositeSource;
  readonly resolver: EndpointResolver;
  readonly backoff: Backoff;
  /** The source's last good resolution, kept across its errors and across restarts. */
  last: Resolution | undefined;
  lastAt: number;
  /** Answered (with endpoints or an error) since the last start. */
  answered: boolean;
  /** The current error streak's message; undefined while the source is well. */
  error: string | undefined;
  retryTimer: NodeJS.Timeout | undefined;
}

/**
 * Follows every source of a composite target with its own resolver and
 * reports their union. Each source fails alone: a source in error keeps its
 * last good set in the union (and is retried on its own backoff, as the
 * channel retries a resolver), while the others stay live; only when no
 * source has ever answered with endpoints is the composite itself in error.
 */
export class CompositeResolver implements EndpointResolver {
  private readonly children: Child[];
  private readonly target: string;
  private readonly maxBackoffMs: number;
  private readonly outageBackoffMs: number;
  private sink: ResolutionSink | undefined;
  private generation = 0;
  private firstWaitTimer: NodeJS.Timeout | undefined;
  /** The first resolution since start was sent (or the wait for the slowest source ran out). */
  private flowing = false;
  private warnedConfigs: string | undefined;

  constructor(parsed: CompositeTarget, context: ResolverContext) {
    this.target = context.target;
    const options = context.channelOptions;
    this.maxBackoffMs = msOption(
      options,
      OPTION_MAX_REFRESH_BACKOFF_MS,
      DEFAULT_MAX_REFRESH_BACKOFF_MS,
    );
    this.outageBackoffMs = Math.min(
      msOption(
        options,
        OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
        DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS,
      ),
      this.maxBackoffMs,
    );
    const initialMs = Math.max(
      100,
      Math.min(
        msOption(options, OPTION_MIN_REFRESH_INTERVAL_MS, DEFAULT_MIN_REFRESH_INTERVAL_MS),
        this.maxBackoffMs,
      ),
    );
    this.children = parsed.sources.map((source) => ({
      source,
      resolver: source.factory.create(source.parsed, {
        target: source.shown,
        channelOptions: options,
      }),
      backoff: new Backoff({ initialMs, maxMs: Math.max(initialMs, this.maxBackoffMs) }),
      last: undefined,
      lastAt: 0,
      answered: false,
      error: undefined,
      retryTimer: undefined,
    }));
  }

  start(sink: ResolutionSink): void {
    this.sink = sink;
    const generation = ++this.generation;
    this.flowing = false;
    for (const child of this.children) {
      child.answered = false;
      try {
        child.resolver.start(this.childSink(child, generation));
      } catch (error) {
        this.onChildError(child, `failed to start: ${errorMessage(error)}`);
      }
    }
  }

  refresh(): void {
    for (const child of this.children) this.refreshChild(child);
  }

  stop(): void {
    this.generation++;
    this.sink = undefined;
    if (this.firstWaitTimer) clearTimeout(this.firstWaitTimer);
    this.firstWaitTimer = undefined;
    for (const child of this.children) {
      if (child.retryTimer) clearTimeout(child.retryTimer);
      child.retryTimer = undefined;
      try {
        child.resolver.stop();
      } catch {
        // Stopping is best effort; nothing may reach the sink after this anyway.
      }
    }
  }

  private childSink(child: Child, generation: number): ResolutionSink {
    const live = (): boolean => generation === this.generation && this.sink !== undefined;
    return {
      update: (resolution) => {
        if (live()) this.onChildUpdate(child, resolution);
      },
      error: (error) => {
        if (live()) this.onChildError(child, errorMessage(error));
      },
      warn: (message) => {
        if (live()) this.sink?.warn(`source ${child.source.name}: ${message}`);
      },
    };
  }

  private refreshChild(child: Child): void {
    try {
      child.resolver.refresh();
    } catch (error) {
      this.onChildError(child, `refresh failed: ${errorMessage(error)}`);
    }
  }

  private onChildUpdate(child: Child, resolution: Resolution): void {
    if (
      typeof resolution !== 'object' ||
      resolution === null ||
      !Array.isArray(resolution.endpoints)
    ) {
      this.onChildError(child, 'its resolver pushed a resolution without an endpoint list');
      return;
    }
    if (child.error !== undefined) {
      this.sink?.warn(`source ${child.source.name}: resolving again`);
    }
    child.last = resolution;
    child.lastAt = Date.now();
    child.answered = true;
    child.error = undefined;
    child.backoff.reset();
    if (child.retryTimer) clearTimeout(child.retryTimer);
    child.retryTimer = undefined;
    this.emit();
  }

  private onChildError(child: Child, message: string): void {
    const first = child.error === undefined;
    child.error = message;
    child.answered = true;
    if (first && child.last) {
      this.sink?.warn(
        `source ${child.source.name}: resolution failed, keeping its last ${child.last.endpoints.length} endpoints: ${message}`,
      );
    }
    this.scheduleRetry(child);
    this.emit();
  }

  /** As the channel does for a resolver: retry a failing source with backoff, sooner once it has answered. */
  private scheduleRetry(child: Child): void {
    if (child.retryTimer || this.sink === undefined) return;
    let delay = child.backoff.next();
    if (child.last && Date.now() - child.lastAt < OUTAGE_FAST_RETRY_WINDOW_MS) {
      delay = Math.min(
        delay,
        Math.round(this.outageBackoffMs * (1 - OUTAGE_JITTER * Math.random())),
      );
    }
    const generation = this.generation;
    child.retryTimer = setTimeout(() => {
      child.retryTimer = undefined;
      if (generation === this.generation) this.refreshChild(child);
    }, delay);
    child.retryTimer.unref();
  }

  private emit(): void {
    const sink = this.sink;
    if (!sink) return;
    if (!this.flowing) {
      const waiting = this.children.filter((c) => !c.answered);
      const anyData = this.children.some((c) => c.last !== undefined);
      if (waiting.length > 0) {
        if (anyData && !this.firstWaitTimer) {
          const generation = this.generation;
          this.firstWaitTimer = setTimeout(() => {
            this.firstWaitTimer = undefined;
            if (generation !== this.generation) return;
            this.flowing = true;
            this.emit();
          }, FIRST_RESOLUTION_WAIT_MS);
          this.firstWaitTimer.unref();
        }
        return;
      }
    }
    const withData = this.children.filter((c) => c.last !== undefined);
    if (withData.length === 0) {
      if (this.children.every((c) => c.answered)) {
        sink.error(
          new Error(
            `no source has answered with endpoints: ${this.children
              .map((c) => `${c.source.name}: ${c.error ?? 'no answer yet'}`)
              .join('; ')}`,
          ),
        );
      }
      return;
    }
    this.flowing = true;
    if (this.firstWaitTimer) clearTimeout(this.firstWaitTimer);
    this.firstWaitTimer = undefined;
    sink.update(this.union());
  }

  /** The union of every source's last good set: the first-listed source wins a shared address. */
  private union(): Resolution {
    const endpoints: ResolvedEndpoint[] = [];
    const owner = new Map<string, string>();
    const shared: string[] = [];
    const parts: string[] = [];
    let config: { value: ServiceConfigJson | string; source: string; from: string } | undefined;
    const carrying: string[] = [];
    for (const child of this.children) {
      const { name, weight: sourceWeight } = child.source;
      const resolution = child.last;
      if (!resolution) {
        parts.push(`${name}: ${child.error ?? 'no answer yet'}`);
        continue;
      }
      let count = 0;
      for (const raw of resolution.endpoints as readonly unknown[]) {
        let key: string | undefined;
        try {
          key = normalizeEndpoint(raw).key;
        } catch {
          // The channel's adapter reports and skips an invalid endpoint.
        }
        if (key !== undefined) {
          const first = owner.get(key);
          if (first !== undefined) {
            shared.push(`${key} (${first}, ${name})`);
            continue;
          }
          owner.set(key, name);
        }
        endpoints.push(withSource(raw as ResolvedEndpoint, name, sourceWeight));
        count++;
      }
      const note =
        typeof resolution.note === 'string' && resolution.note ? ` (${resolution.note})` : '';
      const failing = child.error === undefined ? '' : `, failing, last good kept: ${child.error}`;
      parts.push(`${name}: ${count}${note}${failing}`);
      if (resolution.serviceConfig !== undefined) {
        carrying.push(name);
        config ??= {
          value: resolution.serviceConfig,
          source:
            typeof resolution.serviceConfigSource === 'string'
              ? resolution.serviceConfigSource
              : 'its resolver',
          from: name,
        };
      }
    }
    if (carrying.length > 1) {
      const key = carrying.join(',');
      if (this.warnedConfigs !== key) {
        this.warnedConfigs = key;
        this.sink?.warn(
          `sources ${carrying.join(', ')} each carry a service config; following the first listed, ${carrying[0]}`,
        );
      }
    } else {
      this.warnedConfigs = undefined;
    }
    if (shared.length > 0) {
      parts.push(
        `${shared.length} address${shared.length === 1 ? '' : 'es'} in two sources, kept from the first listed: ${shared.slice(0, 3).join(', ')}${shared.length > 3 ? ', …' : ''}`,
      );
    }
    return {
      endpoints,
      ...(config
        ? {
            serviceConfig: config.value,
            serviceConfigSource: `source ${config.from}: ${config.source}`,
          }
        : {}),
      note: `composite ${parts.join('; ')}`,
    };
  }
}

function withSource(
  endpoint: ResolvedEndpoint,
  source: string,
  sourceWeight: number,
): ResolvedEndpoint {
  if (typeof endpoint !== 'object' || endpoint === null) return endpoint;
  const labels =
    typeof endpoint.labels === 'object' && endpoint.labels !== null ? endpoint.labels : {};
  const out: ResolvedEndpoint = { ...endpoint, labels: { ...labels, [SOURCE_LABEL]: source } };
  if (sourceWeight === 1) return out;
  const weight = typeof endpoint.weight === 'number' ? endpoint.weight : 1;
  return { ...out, weight: Math.min(MAX_WEIGHT, weight * sourceWeight) };
}
