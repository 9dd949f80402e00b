/**
 * When a resolver is asked again: the channel options and defaults the resolver adapter applies to
 * every resolver, and the composite resolver to each of its sources (which rely on their caller
 * for retries, as a top-level resolver relies on the adapter).
 */

/** Channel options. */
export const OPTION_MIN_REFRESH_INTERVAL_MS = 'grpc-lb.min_refresh_interval_ms';
export const OPTION_MAX_REFRESH_BACKOFF_MS = 'grpc-lb.max_refresh_backoff_ms';
export const OPTION_MAX_OUTAGE_REFRESH_BACKOFF_MS = 'grpc-lb.max_outage_refresh_backoff_ms';

export const DEFAULT_MIN_REFRESH_INTERVAL_MS = 1_000;
export const DEFAULT_MAX_REFRESH_BACKOFF_MS = 30_000;
/**
 * The retry cap while a registry that has answered is down: a registry back
 * after a restart is noticed within this long (plus one request), and each
 * channel asks it at most about once a second meanwhile.
 */
export const DEFAULT_MAX_OUTAGE_REFRESH_BACKOFF_MS = 1_500;
/** Retries at the outage cap are spread over [cap − 20%, cap], so clients that lost it together do not retry together. */
export const OUTAGE_JITTER = 0.2;
/**
 * How long after the last good answer the short cap holds. A restart of etcd, Consul or the API
 * server is over well within it; an outage that lasts longer backs off to the general cap, so that
 * thousands of channels do not keep asking a registry that is gone (or that now refuses them) every
 * second and a half.
 */
export const OUTAGE_FAST_RETRY_WINDOW_MS = 120_000;
