/**
 * The real-backend test harness: grpc-js backends as child processes on 127.0.0.x sharing one
 * port, clients for them, and deadline-bounded waiting. See README.md.
 */
export {
  type AddBackendOptions,
  type Backend,
  type BackendExit,
  type BackendSet,
  type StartBackendsOptions,
  isProcessAlive,
  startBackends,
} from './backends';
export {
  type BackendControlErrorCode,
  type BackendStartErrorCode,
  BackendControlError,
  BackendStartError,
} from './errors';
export {
  type CallOptions,
  type GreeterClient,
  type GreeterClientConstructor,
  type HealthClient,
  type HealthClientConstructor,
  type UnaryMethod,
  DEFAULT_CALL_DEADLINE_MS,
  checkHealth,
  createGreeterClient,
  createHealthClient,
  isServiceError,
  loadGreeterService,
  loadHealthService,
  sayGoodbye,
  sayHello,
} from './greeter-client';
export type { BackendStats, HealthServiceMode } from './protocol';
export {
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthStatus,
  type HelloReply,
  type HelloRequest,
  GREETER_SERVICE,
  HEALTH_SERVICE,
  protoDirectory,
  protoPath,
} from './protos';
export {
  type Truthy,
  type WaitForOptions,
  WaitTimeoutError,
  once,
  waitFor,
  withTimeout,
} from './wait';
