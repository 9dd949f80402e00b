import type { experimental } from '@grpc/grpc-js';
import { formatHostPort, type NormalizedEndpoint } from '../endpoint';

/**
 * Our per-endpoint data (weight, labels, zone) rides on the grpc-js Endpoint
 * object itself, which reaches the load balancer unchanged.
 */
export interface GrpcLbEndpoint extends experimental.Endpoint {
  readonly grpcLb: NormalizedEndpoint;
}

/** Resolver attributes under this prefix are kept out of subchannel keys by grpc-js. */
export const NO_SUBCHANNEL_PREFIX = 'grpc.internal.no_subchannel';
/** The target as the user wrote it, for error messages in the balancer. */
export const TARGET_ATTRIBUTE = `${NO_SUBCHANNEL_PREFIX}.grpc_lb.target`;

export function toGrpcEndpoint(endpoint: NormalizedEndpoint): GrpcLbEndpoint {
  return { addresses: [{ host: endpoint.host, port: endpoint.port }], grpcLb: endpoint };
}

/** The identity of an endpoint for diffing, whichever resolver produced it. */
export function endpointKey(endpoint: experimental.Endpoint): string {
  const own = (endpoint as Partial<GrpcLbEndpoint>).grpcLb;
  if (own) return own.key;
  return endpoint.addresses
    .map((a) => ('path' in a ? `unix:${a.path}` : formatHostPort(a.host, a.port)))
    .join(',');
}
