/**
 * The one place that touches grpc-js's `experimental` surface at run time.
 * Everything is taken from the copy of grpc-js the application registered
 * with: resolver and policy registries are module-level maps of one copy,
 * and classes or constants from another copy would not be recognised by
 * it. See INTERNALS.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as GrpcJs from '@grpc/grpc-js';
import type { ServiceConfig } from '@grpc/grpc-js/build/src/service-config';
import { UnsupportedGrpcJsError } from '../errors';
import type { Logger } from '../logger';
import type { GrpcLbMetrics } from '../metrics';

export type Grpc = typeof GrpcJs;

export const SUPPORTED_GRPC_JS_RANGE = '~1.14.0 (>=1.14.0 <1.15.0)';
export const TRACER = 'grpc_lb';

export function isSupportedGrpcJsVersion(version: string): boolean {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  return match !== null && match[1] === '1' && match[2] === '14';
}

/** The `@grpc/grpc-js` module this package would use by default: its peer dependency. */
export function requirePeerGrpc(): Grpc {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@grpc/grpc-js') as Grpc;
}

/** Finds the file a loaded grpc-js module object came from, so its version and internals can be read. */
function locateModuleFile(grpc: Grpc): string | undefined {
  const candidates: unknown[] = [grpc, (grpc as unknown as { default?: unknown }).default];
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod && candidates.includes(mod.exports)) return file;
  }
  return undefined;
}

function packageRootOf(file: string): string | undefined {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string };
      if (pkg.name === '@grpc/grpc-js') return dir;
    }
  }
  return undefined;
}

export interface Runtime {
  readonly grpc: Grpc;
  readonly version: string;
  readonly logger: Logger;
  /** grpc-js's own service config validator, from the same copy (not part of `experimental`). */
  readonly validateServiceConfig: (json: unknown) => ServiceConfig;
  /** The instruments when `register({ metrics })` switched metrics on; undefined otherwise. */
  metrics?: GrpcLbMetrics | undefined;
  /** This process's zone when `register({ zone })` named one (zone-aware routing). */
  zone?: string | undefined;
  trace(text: string): void;
}

/** The name of each gRPC status code, by code (`OK`, `CANCELLED`, …). */
export function statusNames(grpc: Grpc): string[] {
  const names: string[] = [];
  for (const [name, code] of Object.entries(grpc.status)) {
    if (typeof code === 'number') names[code] = name;
  }
  return names;
}

export function createRuntime(grpc: Grpc, logger: Logger): Runtime {
  const file = locateModuleFile(grpc) ?? safeResolve('@grpc/grpc-js');
  const root = file ? packageRootOf(file) : undefined;
  if (!root) {
    throw new UnsupportedGrpcJsError(
      'of unknown version (its package.json was not found)',
      SUPPORTED_GRPC_JS_RANGE,
    );
  }
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    version: string;
  };
  if (!isSupportedGrpcJsVersion(version)) {
    throw new UnsupportedGrpcJsError(version, SUPPORTED_GRPC_JS_RANGE);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const serviceConfigModule = require(path.join(root, 'build', 'src', 'service-config.js')) as {
    validateServiceConfig: Runtime['validateServiceConfig'];
  };
  const { trace: grpcTrace } = grpc.experimental;
  const DEBUG = grpc.logVerbosity.DEBUG;
  return {
    grpc,
    version,
    logger,
    validateServiceConfig: serviceConfigModule.validateServiceConfig,
    trace(text) {
      grpcTrace(DEBUG, TRACER, text);
    },
  };
}

function safeResolve(id: string): string | undefined {
  try {
    return require.resolve(id);
  } catch {
    return undefined;
  }
}
