import { GrpcLbError } from '@grpc-lb/core';

/**
 * Reading or watching a Service's EndpointSlices (or its core/v1 Endpoints), or the ConfigMap
 * holding its service config (`?config=`), failed: the API server is unreachable, refused the
 * credentials (401), or RBAC does not allow it (403 — the message names the identity and the
 * permission to grant). The channel keeps its last good endpoints and the resolver tries again.
 * The message never contains a token.
 */
export class K8sResolutionError extends GrpcLbError {
  /** `namespace/service`. */
  readonly service: string;
  /** The HTTP status the API server answered, when it answered. */
  readonly status: number | undefined;
  constructor(
    service: string,
    message: string,
    status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super('RESOLUTION_FAILED', message, options);
    this.name = 'K8sResolutionError';
    this.service = service;
    this.status = status;
  }
}
