/**
 * Test-side clients for the backends: generated-client constructors for Greeter and Health
 * (proto-loader, loaded once) and promise helpers for single calls.
 */
import * as grpc from '@grpc/grpc-js';
import {
  GREETER_SERVICE,
  HEALTH_SERVICE,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthStatus,
  type HelloReply,
  type HelloRequest,
  loadServiceConstructor,
} from './protos';

/** A unary method of a generated client, with the overloads grpc-js generates. */
export interface UnaryMethod<Req, Res> {
  (
    request: Req,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (
    request: Req,
    metadata: grpc.Metadata,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (
    request: Req,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (request: Req, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
}

export interface GreeterClient extends grpc.Client {
  SayHello: UnaryMethod<HelloRequest, HelloReply>;
  SayGoodbye: UnaryMethod<HelloRequest, HelloReply>;
}

export interface HealthClient extends grpc.Client {
  Check: UnaryMethod<HealthCheckRequest, HealthCheckResponse>;
  Watch(
    request: HealthCheckRequest,
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<HealthCheckResponse>;
}

export type GreeterClientConstructor = new (
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => GreeterClient;

export type HealthClientConstructor = new (
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => HealthClient;

let greeterConstructor: GreeterClientConstructor | undefined;
let healthConstructor: HealthClientConstructor | undefined;

/** The generated Greeter client constructor: `new Greeter(target, credentials, options)`. */
export function loadGreeterService(): GreeterClientConstructor {
  // proto-loader builds the methods from the .proto at runtime, so the static type is asserted.
  greeterConstructor ??= loadServiceConstructor(
    'greeter.proto',
    GREETER_SERVICE,
  ) as unknown as GreeterClientConstructor;
  return greeterConstructor;
}

/** The generated grpc.health.v1.Health client constructor. */
export function loadHealthService(): HealthClientConstructor {
  healthConstructor ??= loadServiceConstructor(
    'health.proto',
    HEALTH_SERVICE,
  ) as unknown as HealthClientConstructor;
  return healthConstructor;
}

/** A Greeter client with insecure credentials, e.g. `createGreeterClient('ipv4:127.0.0.2:40123')`. */
export function createGreeterClient(target: string, options?: grpc.ClientOptions): GreeterClient {
  const Greeter = loadGreeterService();
  return new Greeter(target, grpc.credentials.createInsecure(), options);
}

/** A Health client with insecure credentials. */
export function createHealthClient(target: string, options?: grpc.ClientOptions): HealthClient {
  const Health = loadHealthService();
  return new Health(target, grpc.credentials.createInsecure(), options);
}

export interface CallOptions {
  /** Deadline relative to now. Default 5000 ms so that no call can hang a test; Infinity for none. */
  deadlineMs?: number;
  metadata?: grpc.Metadata;
  /** grpc-js `waitForReady`: queue the call while the channel is not READY instead of failing. */
  waitForReady?: boolean;
}

export const DEFAULT_CALL_DEADLINE_MS = 5000;

function callOptions(options: CallOptions): Partial<grpc.CallOptions> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_CALL_DEADLINE_MS;
  return Number.isFinite(deadlineMs) ? { deadline: Date.now() + deadlineMs } : {};
}

/** grpc-js carries waitForReady on the metadata; the caller's metadata is copied, not changed. */
function callMetadata(options: CallOptions): grpc.Metadata {
  if (options.waitForReady === undefined) return options.metadata ?? new grpc.Metadata();
  const metadata = options.metadata?.clone() ?? new grpc.Metadata();
  metadata.setOptions({ ...metadata.getOptions(), waitForReady: options.waitForReady });
  return metadata;
}

function unary<Res>(start: (callback: grpc.requestCallback<Res>) => void): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    start((error, response) => {
      if (error) reject(error);
      else if (response === undefined) reject(new Error('call completed without a response'));
      else resolve(response);
    });
  });
}

/** Calls Greeter/SayHello; rejects with the grpc-js `ServiceError` (it has `code`, `details`). */
export function sayHello(
  client: GreeterClient,
  name: string,
  options: CallOptions = {},
): Promise<HelloReply> {
  const metadata = callMetadata(options);
  return unary<HelloReply>((callback) =>
    client.SayHello({ name }, metadata, callOptions(options), callback),
  );
}

/** Calls Greeter/SayGoodbye; rejects with the grpc-js `ServiceError`. */
export function sayGoodbye(
  client: GreeterClient,
  name: string,
  options: CallOptions = {},
): Promise<HelloReply> {
  const metadata = callMetadata(options);
  return unary<HelloReply>((callback) =>
    client.SayGoodbye({ name }, metadata, callOptions(options), callback),
  );
}

/** Calls Health/Check for `service` ('' = the whole server) and returns the status. */
export async function checkHealth(
  client: HealthClient,
  service = '',
  options: CallOptions = {},
): Promise<HealthStatus> {
  const metadata = callMetadata(options);
  const response = await unary<HealthCheckResponse>((callback) =>
    client.Check({ service }, metadata, callOptions(options), callback),
  );
  return response.status;
}

/** Narrows a rejection from a call to grpc-js's `ServiceError`. */
export function isServiceError(error: unknown): error is grpc.ServiceError {
  return (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'number' &&
    'metadata' in error
  );
}
