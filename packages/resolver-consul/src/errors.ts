import { GrpcLbError } from '@grpc-lb/core';

/**
 * Reading a service's instances (or its service config's KV key) from Consul failed: the agent is
 * unreachable or timed out, answered 5xx, refused the ACL token (403: the message names the
 * service and the `service:read` permission, or the key and an ACL rule that reads it), or sent
 * something that is not a health listing or a KV entry. The channel keeps its last good endpoints
 * and service config, and the resolver tries again. The message never contains a token.
 */
export class ConsulResolutionError extends GrpcLbError {
  /** The Consul service name. */
  readonly service: string;
  /** The HTTP status the agent answered, when it answered. */
  readonly status: number | undefined;
  /** The KV key of the service config, when reading it failed. */
  readonly key: string | undefined;
  constructor(
    service: string,
    message: string,
    status: number | undefined,
    options?: { cause?: unknown; key?: string },
  ) {
    super(
      'RESOLUTION_FAILED',
      message,
      options?.cause !== undefined ? { cause: options.cause } : undefined,
    );
    this.name = 'ConsulResolutionError';
    this.service = service;
    this.status = status;
    this.key = options?.key;
  }
}

/**
 * Registering or deregistering a service instance with the Consul agent failed. The message names
 * the service ID and the agent; it never contains a token.
 */
export class ConsulRegistrationError extends GrpcLbError {
  /** The service instance ID. */
  readonly serviceId: string;
  readonly status: number | undefined;
  constructor(
    serviceId: string,
    message: string,
    status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super('REGISTRATION_FAILED', message, options);
    this.name = 'ConsulRegistrationError';
    this.serviceId = serviceId;
    this.status = status;
  }
}
