/**
 * The test protos (test/protos/*.proto): where they live, how they load, and their message shapes.
 * Shared by the backend child process and the test-side clients so both decode the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export type ProtoFile = 'greeter.proto' | 'health.proto';

/** grpc.health.v1 serving status; `enums: String` makes proto-loader decode it by name. */
export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HelloRequest {
  name: string;
}

export interface HelloReply {
  /** "Hello eric" / "Bonjour eric" / … for SayHello, "Goodbye eric" / "Au revoir eric" / … for SayGoodbye. */
  message: string;
  /** Name of the backend that answered, e.g. "backend-2". */
  backend: string;
  /** host:port the answering backend listens on, e.g. "127.0.0.3:40123". */
  address: string;
  labels: Record<string, string>;
}

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: HealthStatus;
}

export const GREETER_SERVICE = 'grpclb.test.Greeter';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let protoDir: string | undefined;

/**
 * Directory holding the .proto files. Searched upwards from this module so it is found both from
 * compiled output (test/dist/harness → test/protos) and from sources (test/harness → test/protos).
 */
export function protoDirectory(): string {
  if (protoDir !== undefined) return protoDir;
  let dir = __dirname;
  for (let depth = 0; depth < 5; depth++) {
    const candidate = path.join(dir, 'protos');
    if (fs.existsSync(path.join(candidate, 'greeter.proto'))) {
      protoDir = candidate;
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`test protos not found: no protos/greeter.proto in ${__dirname} or its parents`);
}

export function protoPath(file: ProtoFile): string {
  return path.join(protoDirectory(), file);
}

const loaded = new Map<ProtoFile, grpc.GrpcObject>();

function loadProto(file: ProtoFile): grpc.GrpcObject {
  let grpcObject = loaded.get(file);
  if (grpcObject === undefined) {
    grpcObject = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath(file), LOADER_OPTIONS));
    loaded.set(file, grpcObject);
  }
  return grpcObject;
}

/** The generated-client constructor of a fully qualified service, e.g. "grpclb.test.Greeter". */
export function loadServiceConstructor(
  file: ProtoFile,
  fullName: string,
): grpc.ServiceClientConstructor {
  let node: grpc.GrpcObject[string] = loadProto(file);
  for (const part of fullName.split('.')) {
    if (typeof node !== 'object' || !(part in node)) {
      throw new Error(`service ${fullName} not found in ${file}`);
    }
    const next: grpc.GrpcObject[string] | undefined = (node as grpc.GrpcObject)[part];
    if (next === undefined) throw new Error(`service ${fullName} not found in ${file}`);
    node = next;
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`${fullName} in ${file} is not a service`);
  }
  return node;
}
