import { GrpcLbError } from '@grpc-lb/core';

/**
 * A DNS resolution that failed (SERVFAIL, REFUSED, timeouts, unusable answers): the channel keeps
 * its last good endpoints and the resolver tries again. NXDOMAIN and "no records" are not errors:
 * they are an honest empty set.
 */
export class DnsResolutionError extends GrpcLbError {
  /** The name that was being looked up, as queried (`api.ns.svc.cluster.local`). */
  readonly hostname: string;
  constructor(hostname: string, message: string, options?: { cause?: unknown }) {
    super('RESOLUTION_FAILED', message, options);
    this.name = 'DnsResolutionError';
    this.hostname = hostname;
  }
}
