import { GrpcLbError } from '@grpc-lb/core';

/**
 * Reading or watching an etcd prefix (or the target's service config key) failed (etcd
 * unreachable, authentication or permission refused, no answer in time). The channel keeps its
 * last good endpoints and service config, and the resolver tries again. The message names the
 * prefix or key and the etcd endpoints; it never contains a password.
 */
export class EtcdResolutionError extends GrpcLbError {
  /** The key prefix being read, e.g. `services/hello/`. */
  readonly keyPrefix: string;
  /** The service config key (`?config=<key>`) when the failure is about it. */
  readonly configKey: string | undefined;
  constructor(
    keyPrefix: string,
    message: string,
    options?: { cause?: unknown; configKey?: string | undefined },
  ) {
    super(
      'RESOLUTION_FAILED',
      message,
      options && 'cause' in options ? { cause: options.cause } : undefined,
    );
    this.name = 'EtcdResolutionError';
    this.keyPrefix = keyPrefix;
    this.configKey = options?.configKey;
  }
}

/**
 * Registering an endpoint in etcd failed, or deleting it at deregistration did. The message names
 * the key and the etcd endpoints; it never contains a password.
 */
export class EtcdRegistrationError extends GrpcLbError {
  /** The key being registered, e.g. `services/hello/10.0.0.7:50051`. */
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('REGISTRATION_FAILED', message, options);
    this.name = 'EtcdRegistrationError';
    this.key = key;
  }
}
