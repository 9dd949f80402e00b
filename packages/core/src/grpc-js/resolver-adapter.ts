/**
 * Turns a grpc-free `EndpointResolver` into a grpc-js 1.14 resolver, so that
 * resolver packages need to know none of the rules grpc-js sets on that
 * boundary (packages/core/INTERNALS.md describes the integration as a whole):
 *
 * - The listener is never called from the constructor or from
 *   `updateResolution()`: grpc-js is not ready to be re-entered there, so
 *   every result is delivered on a later turn (`setImmediate`).
 * - Refreshes are rate-limited (`grpc-lb.min_refresh_interval_ms`): grpc-js
 *   asks again as soon as a connection to a dead backend fails, which with a
 *   resolver that answers at once becomes thousands of resolutions a second.
 * - After an error the last good endpoints are kept, and the resolver is
 *   retried with backoff without waiting to be asked; an update the channel
 *   rejects (the listener returns false) is retried the same way. Once the
 *   registry has answered, an outage is retried on a short capped schedule
 *   (`grpc-lb.max_outage_refresh_backoff_ms`), so that a registry that comes
 *   back is followed within about that long.
 * - An update identical to the one delivered (same endpoints in any order,
 *   same service config) is not delivered again.
 * - An idle channel destroys its resolver and later calls
 *   `updateResolution()` on the same object: `destroy()` stops the inner
 *   resolver and the next `updateResolution()` starts it again.
 * - One ConfigSelector object and one attributes object serve every update:
 *   the attributes become subchannel arguments, which grpc-js compares by
 *   identity, so a new object per update made round robin reconnect to
 *   every backend on each one. The
 *   selector applies `methodConfig` itself, because it replaces grpc-js's
 *   default selector.
 * - The default authority is the factory's, and must be one `host[:port]`
 *   (a list makes every call fail in grpc-js's URL parsing); a registration
 *   probe target (`PROBE_PATH`) answers without parsing anything.
 * - A service config grpc-js would quietly replace by pick_first (an unknown
 *   policy name, a policy config it cannot parse) is an error here: thrown
 *   from `new Client(...)` for the channel option, which is read in the
 *   constructor, and delivered as an UNAVAILABLE status — failing calls with
 *   a message naming it — for one that comes from the resolver later.
 */
import type { ChannelOptions, experimental } from '@grpc/grpc-js';
import type { ServiceConfig } from '@grpc/grpc-js/build/src/service-config';
import { Backoff } from '../backoff';
import { ConfigError, errorMessage } from '../errors';
import type {
  EndpointResolver,
  Resolution,
  ResolutionSink,
  ResolverFactory,
  ServiceConfigJson,
  TargetUri,
} from '../resolver-contract';
import {
  parseServiceConfigText,
  readServiceConfig,
  withDefaultPolicy,
  type ServiceConfigCheck,
} from '../service-config';
import { METRICS_OPTION, type GrpcLbMetrics, type TargetMetrics } from '../metrics';
import { isObserver, type LoadBalancerObserver } from '../observer';
import { OBSERVER_OPTION } from '../observer';
import { redactSecrets } from '../redact';
import { targetUriToString } from '../target-uri';
import { StableConfigSelector } from './config-selector';
import { TARGET_ATTRIBUTE } from './endpoint-info';
import { EndpointLists, type EndpointList } from './endpoint-list';
import type { Runtime } from './runtime';

import {
  DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  DEFAULT_MAX_REFRESH_BACKOFF_MS,
  DEFAULT_MIN_REFRESH_INTERVAL_MS,
  OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
  OPTION_MIN_REFRESH_INTERVAL_MS,
  OUTAGE_FAST_RETRY_WINDOW_MS,
  OUTAGE_JITTER,
} from '../refresh-policy';

export {
  OPTION_MIN_REFRESH_INTERVAL_MS,
  OPTION_MAX_REFRESH_BACKOFF_MS,
  OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
  OUTAGE_FAST_RETRY_WINDOW_MS,
};

/** A target path that makes the constructor do nothing: `register()` uses it to check its schemes are live. */
export const PROBE_PATH = '\u0000grpc-lb-registration-probe';

type GrpcUri = experimental.GrpcUri;

function toTargetUri(uri: GrpcUri): TargetUri {
  return { scheme: uri.scheme ?? '', authority: uri.authority, path: uri.path };
}

function numberOption(options: ChannelOptions, name: string, fallback: number): number {
  const value: unknown = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(
      name,
      `expected a non-negative number of milliseconds, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

interface PendingUpdate {
  readonly list: EndpointList;
  readonly serviceConfig: ServiceConfigJson | string | undefined;
  readonly serviceConfigSource: string | undefined;
  readonly note: string;
}

/**
 * grpc-js 1.14's service config validator reads a `timeout` of "0.3s" as 3
 * nanoseconds (the fraction is not scaled), so every fractional timeout
 * expires at once. We apply method configs ourselves, so we take the
 * timeout from the original text with grpc-js's own correct duration parser.
 */
function correctTimeouts(
  source: ServiceConfigJson,
  validated: ServiceConfig,
  parseDuration: (text: string) => { seconds: number; nanos: number } | null,
): void {
  const methodConfigs = source['methodConfig'];
  if (!Array.isArray(methodConfigs)) return;
  methodConfigs.forEach((raw: unknown, i) => {
    const timeout = (raw as { timeout?: unknown } | null)?.timeout;
    const target = validated.methodConfig[i];
    if (typeof timeout !== 'string' || !target) return;
    const parsed = parseDuration(timeout);
    if (parsed) target.timeout = parsed;
  });
}

export interface AdaptedResolverClass {
  new (
    target: GrpcUri,
    listener: experimental.ResolverListener,
    options: ChannelOptions,
  ): experimental.Resolver;
  getDefaultAuthority(target: GrpcUri): string;
  readonly factory: ResolverFactory;
}

export function adaptResolver(rt: Runtime, factory: ResolverFactory): AdaptedResolverClass {
  const {
    statusOrFromValue,
    statusOrFromError,
    CHANNEL_ARGS_CONFIG_SELECTOR_KEY,
    isLoadBalancerNameRegistered,
    parseLoadBalancingConfig,
  } = rt.grpc.experimental;
  const UNAVAILABLE = rt.grpc.status.UNAVAILABLE;
  /** A policy that is not ours is usable when this grpc-js has it and accepts its config (throws if not). */
  const foreignPolicy: NonNullable<ServiceConfigCheck['foreignPolicy']> = (name, config) => {
    if (!isLoadBalancerNameRegistered(name)) return false;
    try {
      parseLoadBalancingConfig({ [name]: config as object });
    } catch (error) {
      // grpc-js prefixes the policy name, which the field path already gives.
      throw new Error(errorMessage(error).replace(`${name}: `, ''));
    }
    return true;
  };

  class GrpcLbResolver implements experimental.Resolver {
    static readonly factory = factory;

    static getDefaultAuthority(target: GrpcUri): string {
      if (target.path === PROBE_PATH) return 'probe';
      const uri = toTargetUri(target);
      return factory.defaultAuthority(factory.parseTarget(uri, targetUriToString(uri)), uri);
    }

    private readonly target: string = '';
    private readonly inner: EndpointResolver | undefined;
    private readonly minRefreshIntervalMs: number = DEFAULT_MIN_REFRESH_INTERVAL_MS;
    private readonly backoff: Backoff = new Backoff({
      initialMs: 1_000,
      maxMs: DEFAULT_MAX_REFRESH_BACKOFF_MS,
    });
    /** The retry cap once the registry has answered (see `retryDelay`). */
    private readonly maxOutageBackoffMs: number = DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS;
    /** The channel's `grpc.service_config`, used when the resolver supplies none. */
    private readonly channelServiceConfig: ServiceConfigJson | undefined;
    private readonly configSelector: StableConfigSelector;
    private readonly attributes: { [key: string]: unknown };

    /** Bumped by every start and stop: sink calls from an older generation are ignored. */
    private generation = 0;
    private running = false;
    private lastRefreshAt = -Infinity;
    private refreshTimer: NodeJS.Timeout | undefined;
    private deliveryImmediate: NodeJS.Immediate | undefined;
    private metricsSource: GrpcLbMetrics | undefined;
    private metrics: TargetMetrics | undefined;
    private pending: { update: PendingUpdate } | { error: string } | undefined;

    /**
     * What the current LB has been given (the error, or the service config of `deliveredSet`);
     * cleared on destroy, since the LB is then destroyed too.
     */
    private deliveredFingerprint: string | undefined;
    /** The endpoints last given, when `deliveredFingerprint` names a config. */
    private deliveredSet: EndpointList | undefined;
    /** Validates each list, reusing what is unchanged since the last one. */
    private readonly lists = new EndpointLists();
    /** The last good set, kept across errors and restarts. */
    private lastGood: PendingUpdate | undefined;
    /** When `lastGood` last came (Date.now()). */
    private lastGoodAt = 0;
    private lastServiceConfig:
      { text: string; validated: ServiceConfig; source: string } | undefined;
    /** The resolver's last service config as it sent it, and what reading it gave (read once). */
    private lastResolverConfig:
      | {
          raw: string;
          result: { ok: true; config: ServiceConfigJson } | { ok: false; error: string };
        }
      | undefined;
    /** The resolver document last refused while an older config was kept (warned once). */
    private warnedBadConfig: string | undefined;
    /** The service config the channel last took, and where it came from (for the observer). */
    private appliedConfig: { text: string; source: string } | undefined;
    private readonly observer: LoadBalancerObserver | undefined;
    /** The channel option `grpc-lb.metrics: false`: this channel is not measured. */
    private readonly unmeasured: boolean;
    private warnedErrorStreak = false;
    /** The channel refused the last update: fresh data must not reset the retry backoff. */
    private rejected = false;

    constructor(
      target: GrpcUri,
      private readonly listener: experimental.ResolverListener,
      options: ChannelOptions,
    ) {
      this.configSelector = new StableConfigSelector(rt.grpc.status.OK);
      this.unmeasured = options[METRICS_OPTION] === false;
      const observer: unknown = options[OBSERVER_OPTION];
      if (isObserver(observer)) this.observer = observer;
      this.attributes = { [CHANNEL_ARGS_CONFIG_SELECTOR_KEY]: this.configSelector };
      if (target.path === PROBE_PATH) return;
      const uri = toTargetUri(target);
      const written = targetUriToString(uri);
      // The parsers refuse credentials in a target; redacting what every message, trace line and
      // failed call shows is the second line of defence for anything secret-like they accept.
      this.target = redactSecrets(written);
      this.attributes[TARGET_ATTRIBUTE] = this.target;
      const parsed = factory.parseTarget(uri, written);
      this.minRefreshIntervalMs = numberOption(
        options,
        OPTION_MIN_REFRESH_INTERVAL_MS,
        DEFAULT_MIN_REFRESH_INTERVAL_MS,
      );
      const maxBackoff = numberOption(
        options,
        OPTION_MAX_REFRESH_BACKOFF_MS,
        DEFAULT_MAX_REFRESH_BACKOFF_MS,
      );
      const maxMs = Math.max(maxBackoff, this.minRefreshIntervalMs);
      this.backoff = new Backoff({ initialMs: Math.max(this.minRefreshIntervalMs, 100), maxMs });
      const outageBackoff = numberOption(
        options,
        OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS,
        DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS,
      );
      // Never more often than the refresh interval allows, never later than the general cap.
      this.maxOutageBackoffMs = Math.min(
        Math.max(outageBackoff, this.minRefreshIntervalMs, 100),
        maxMs,
      );
      const text: unknown = options['grpc.service_config'];
      if (text !== undefined) {
        // Thrown from here, the error reaches the caller of `new Client(…)`.
        this.channelServiceConfig = parseServiceConfigText(text, this.target, { foreignPolicy });
      }
      this.inner = factory.create(parsed, { target: this.target, channelOptions: options });
    }

    updateResolution(): void {
      if (!this.inner) return;
      if (!this.running) {
        this.start(this.inner);
      } else {
        this.requestRefresh();
      }
    }

    destroy(): void {
      if (!this.inner || !this.running) return;
      rt.trace(`${this.target}: resolver stopped`);
      this.running = false;
      this.metrics?.resolverStopped();
      this.generation++;
      this.clearTimers();
      this.pending = undefined;
      this.deliveredFingerprint = undefined;
      this.rejected = false;
      try {
        this.inner.stop();
      } catch (error) {
        rt.logger.warn(`${this.target}: resolver stop failed: ${errorMessage(error)}`);
      }
    }

    private start(inner: EndpointResolver): void {
      this.running = true;
      this.measure()?.resolverStarted();
      const generation = ++this.generation;
      this.lastRefreshAt = Date.now();
      rt.trace(`${this.target}: resolver started`);
      const sink: ResolutionSink = {
        update: (resolution) => {
          if (generation === this.generation) this.onUpdate(resolution);
        },
        error: (error) => {
          if (generation === this.generation) this.onError(redactSecrets(errorMessage(error)));
        },
        warn: (message) => {
          if (generation === this.generation) {
            rt.logger.warn(`${this.target}: ${redactSecrets(String(message))}`);
          }
        },
      };
      try {
        inner.start(sink);
      } catch (error) {
        this.onError(`resolver failed to start: ${errorMessage(error)}`);
      }
    }

    private requestRefresh(): void {
      if (this.refreshTimer) return;
      const wait = this.lastRefreshAt + this.minRefreshIntervalMs - Date.now();
      if (wait <= 0) {
        this.refreshNow();
      } else {
        rt.trace(`${this.target}: refresh rate-limited, in ${wait} ms`);
        this.scheduleRefresh(wait);
      }
    }

    private scheduleRefresh(delayMs: number): void {
      if (this.refreshTimer) clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = undefined;
        this.refreshNow();
      }, delayMs);
      this.refreshTimer.unref();
    }

    private refreshNow(): void {
      if (!this.running || !this.inner) return;
      this.lastRefreshAt = Date.now();
      rt.trace(`${this.target}: refresh`);
      try {
        this.inner.refresh();
      } catch (error) {
        this.onError(`resolver refresh failed: ${errorMessage(error)}`);
      }
    }

    private onUpdate(resolution: Resolution): void {
      if (
        typeof resolution !== 'object' ||
        resolution === null ||
        !Array.isArray(resolution.endpoints)
      ) {
        this.onError('resolver pushed a resolution without an endpoint list');
        return;
      }
      const list = this.lists.read(resolution.endpoints as readonly unknown[], (message) =>
        rt.logger.warn(`${this.target}: ${message}`),
      );
      if (list.endpoints.length === 0 && resolution.endpoints.length > 0) {
        this.onError(`all ${resolution.endpoints.length} endpoints from the resolver were invalid`);
        return;
      }
      if (!this.rejected) this.backoff.reset();
      this.warnedErrorStreak = false;
      if (this.refreshTimer) {
        // Fresh data answers any pending backoff retry or requested refresh.
        clearTimeout(this.refreshTimer);
        this.refreshTimer = undefined;
      }
      const source: unknown = resolution.serviceConfigSource;
      const update: PendingUpdate = {
        list,
        serviceConfig: resolution.serviceConfig,
        serviceConfigSource: typeof source === 'string' && source !== '' ? source : undefined,
        // Only the resolver's own words: failure messages append a non-empty note.
        note: typeof resolution.note === 'string' ? resolution.note : '',
      };
      this.lastGood = update;
      this.lastGoodAt = Date.now();
      this.measure()?.resolverUpdate();
      this.pending = { update };
      this.scheduleDelivery();
    }

    /**
     * The wait before retrying after an error. A registry that has given us a
     * good set worked and is most likely down for a while (killed, restarted,
     * hung): it is retried at most `maxOutageBackoffMs` apart, so that it is
     * followed again soon after it is back — for the first
     * `OUTAGE_FAST_RETRY_WINDOW_MS` after its last good answer; after that the
     * backoff grows to the general cap. One that never answered (a wrong
     * address, refused credentials) backs off up to the general cap.
     */
    private retryDelay(): number {
      const delay = this.backoff.next();
      const cap = this.maxOutageBackoffMs;
      if (this.lastGood === undefined || delay <= cap) return delay;
      if (Date.now() - this.lastGoodAt >= OUTAGE_FAST_RETRY_WINDOW_MS) return delay;
      return Math.round(cap * (1 - OUTAGE_JITTER * Math.random()));
    }

    /** This target's metrics, when `register({ metrics })` switched them on. */
    private measure(): TargetMetrics | undefined {
      if (this.unmeasured) return undefined;
      if (rt.metrics !== this.metricsSource) {
        this.metrics?.resolverStopped();
        this.metricsSource = rt.metrics;
        this.metrics = rt.metrics?.forTarget(this.target);
        if (this.running) this.metrics?.resolverStarted();
      }
      return this.metrics;
    }

    private onError(message: string): void {
      this.measure()?.resolverError();
      const delay = this.retryDelay();
      if (this.lastGood) {
        if (!this.warnedErrorStreak) {
          rt.logger.warn(
            `${this.target}: resolution failed, keeping the last ${this.lastGood.list.endpoints.length} endpoints: ${message}`,
          );
          this.warnedErrorStreak = true;
        }
        rt.trace(`${this.target}: resolution error (${message}); retry in ${delay} ms`);
        if (this.deliveredFingerprint === undefined) {
          // Restarted after idle and the registry is down: the new balancer still gets the last good set.
          this.pending = { update: this.lastGood };
          this.scheduleDelivery();
        }
      } else {
        rt.trace(
          `${this.target}: resolution error (${message}); no endpoints yet; retry in ${delay} ms`,
        );
        this.pending = { error: message };
        this.scheduleDelivery();
      }
      if (this.running) this.scheduleRefresh(delay);
    }

    private scheduleDelivery(): void {
      if (this.deliveryImmediate) return;
      this.deliveryImmediate = setImmediate(() => {
        this.deliveryImmediate = undefined;
        this.deliver();
      });
    }

    private deliver(): void {
      const pending = this.pending;
      this.pending = undefined;
      if (!pending || !this.running) return;
      if ('error' in pending) {
        const fingerprint = `error:${pending.error}`;
        if (fingerprint === this.deliveredFingerprint) return;
        this.deliveredFingerprint = fingerprint;
        const config = this.serviceConfigFor(undefined);
        // The channel's answer to an error is not news: onError has already scheduled the retry.
        this.listener(
          statusOrFromError({
            code: UNAVAILABLE,
            details: `grpc-lb: ${this.target}: ${pending.error}`,
          }),
          this.attributes,
          config.ok ? statusOrFromValue(config.value) : null,
          pending.error,
        );
        return;
      }
      const { list, serviceConfig, serviceConfigSource, note } = pending.update;
      const config = this.serviceConfigFor(serviceConfig, serviceConfigSource);
      const fingerprint = `config:${config.ok ? config.text : `!${config.error}`}`;
      if (
        fingerprint === this.deliveredFingerprint &&
        this.deliveredSet !== undefined &&
        this.lists.same(this.deliveredSet, list)
      ) {
        rt.trace(`${this.target}: identical update skipped`);
        return;
      }
      this.deliveredFingerprint = fingerprint;
      this.deliveredSet = list;
      if (config.ok) this.configSelector.setServiceConfig(config.value);
      rt.trace(`${this.target}: delivering ${list.endpoints.length} endpoints (${note})`);
      const accepted = this.listener(
        // A copy: what the channel is given is its own.
        statusOrFromValue(list.endpoints.slice()),
        this.attributes,
        config.ok
          ? statusOrFromValue(config.value)
          : statusOrFromError({ code: UNAVAILABLE, details: config.error }),
        note,
      );
      if (accepted) {
        if (this.rejected) this.backoff.reset();
        this.rejected = false;
        if (config.ok) this.reportApplied(config.text, config.source);
      } else {
        this.onRejected();
      }
    }

    /** Tells the observer, once per change, which config the channel now follows. */
    private reportApplied(text: string, source: string): void {
      if (this.appliedConfig?.text === text && this.appliedConfig.source === source) return;
      this.appliedConfig = { text, source };
      rt.trace(`${this.target}: service config from ${source} applied`);
      this.observer?.reportConfig({
        target: this.target,
        status: 'applied',
        source,
        config: JSON.parse(text) as ServiceConfigJson,
      });
    }

    /**
     * The channel refused an update (its balancer could not use it, or the
     * service config was unusable). As grpc-js's own resolvers do, treat it
     * as a failed resolution: resolve again after the backoff, and offer the
     * result even if it is the same as the one refused.
     */
    private onRejected(): void {
      this.rejected = true;
      this.deliveredFingerprint = undefined;
      const delay = this.backoff.next();
      rt.trace(`${this.target}: update rejected by the channel; resolving again in ${delay} ms`);
      if (this.running) this.scheduleRefresh(delay);
    }

    /**
     * The service config for this update: the resolver's, else the channel
     * option, else none — then our round robin when it names no policy.
     * Validated here so a bad one is a clear error, not a silent pick_first.
     */
    private serviceConfigFor(
      fromResolver: ServiceConfigJson | string | undefined,
      documentSource?: string,
    ):
      | { ok: true; value: ServiceConfig; text: string; source: string }
      | { ok: false; error: string } {
      let chosen: ServiceConfigJson | undefined = this.channelServiceConfig;
      let source =
        chosen === undefined
          ? 'the default (no service config)'
          : 'the channel option "grpc.service_config"';
      if (fromResolver !== undefined) {
        const from = documentSource ?? 'the resolver';
        const read = this.readResolverConfig(fromResolver, from);
        if (!read.ok) {
          const kept = this.lastServiceConfig;
          const raw = `${from}\n${typeof fromResolver === 'string' ? fromResolver : JSON.stringify(fromResolver)}`;
          if (this.warnedBadConfig !== raw) {
            this.warnedBadConfig = raw;
            rt.logger.warn(
              kept
                ? `${read.error}; keeping the previous service config (${kept.source})`
                : `${read.error}; no earlier service config to keep: calls fail until it is fixed`,
            );
            this.observer?.reportConfig({
              target: this.target,
              status: 'rejected',
              source: from,
              error: read.error,
            });
          }
          if (kept)
            return { ok: true, value: kept.validated, text: kept.text, source: kept.source };
          return { ok: false, error: read.error };
        }
        this.warnedBadConfig = undefined;
        chosen = read.config;
        source = from;
      }
      const effective = withDefaultPolicy(chosen);
      const text = JSON.stringify(effective);
      if (this.lastServiceConfig?.text === text) {
        this.lastServiceConfig.source = source;
        return { ok: true, value: this.lastServiceConfig.validated, text, source };
      }
      try {
        const validated = rt.validateServiceConfig(JSON.parse(text));
        correctTimeouts(effective, validated, rt.grpc.experimental.parseDuration);
        this.lastServiceConfig = { text, validated, source };
        return { ok: true, value: validated, text, source };
      } catch (error) {
        return {
          ok: false,
          error: `${this.target}: invalid service config from ${source}: ${errorMessage(error)}`,
        };
      }
    }

    /**
     * Reads a config the resolver supplied. A registry's config is read by
     * clients of several versions, so a field this version does not know is
     * dropped (once, with one warning naming each) rather than refusing the
     * whole config; anything else wrong is an error.
     */
    private readResolverConfig(
      config: ServiceConfigJson | string,
      from: string,
    ): { ok: true; config: ServiceConfigJson } | { ok: false; error: string } {
      const raw = `${from}\n${typeof config === 'string' ? config : JSON.stringify(config)}`;
      if (this.lastResolverConfig?.raw === raw) return this.lastResolverConfig.result;
      let result: { ok: true; config: ServiceConfigJson } | { ok: false; error: string };
      const context = `${this.target}: service config from ${from}`;
      try {
        let json: unknown = config;
        if (typeof config === 'string') {
          try {
            json = JSON.parse(config);
          } catch (error) {
            throw new Error(`${context}: not valid JSON: ${errorMessage(error)}`);
          }
        }
        const read = readServiceConfig(json, context, {
          origin: 'resolver',
          foreignPolicy,
        });
        if (read.ignoredFields.length > 0) {
          rt.logger.warn(
            `${context}: ignoring fields this version of @grpc-lb/core does not know: ${read.ignoredFields.join(', ')}`,
          );
        }
        result = { ok: true, config: read.config };
      } catch (error) {
        result = { ok: false, error: errorMessage(error) };
      }
      this.lastResolverConfig = { raw, result };
      return result;
    }

    private clearTimers(): void {
      if (this.refreshTimer) clearTimeout(this.refreshTimer);
      this.refreshTimer = undefined;
      if (this.deliveryImmediate) clearImmediate(this.deliveryImmediate);
      this.deliveryImmediate = undefined;
    }
  }

  return GrpcLbResolver;
}
