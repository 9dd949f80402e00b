/**
 * Test servers and tools built from Go modules (test/testbin/<module>/go.mod, pinned by go.sum):
 * Consul, kube-apiserver, etcd 3.6 (+ etcdctl), grpcurl, ghz, and the grpc-go interop peers of
 * test/interop/etcd-go. Each is built once per machine into
 * `~/.cache/grpc-lb-testbin/<module>-<version>-<hash>/`, the hash covering the Go version, the
 * module files and the build flags, so a change to any rebuilds it and nothing stale is used.
 *
 *   const { consul } = await ensureTestbin('consul');           // builds when missing
 *   if (!(await requireTestbin(t, 'ghz'))) return;              // in a test: skip, or fail under CI
 *
 * `npm run testbin -- build|versions` runs the same builds from the shell.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { TestContext } from 'node:test';
import { run } from './server-process';
import { TOOL_SEARCH_PATH } from './system-tools';

export type TestbinModule =
  'consul' | 'kube-apiserver' | 'etcd' | 'grpcurl' | 'ghz' | 'etcd-interop';

interface BinarySpec {
  readonly name: string;
  /** Package path to build, relative to the module (`./server`) or a dependency's. */
  readonly pkg: string;
}

interface ModuleSpec {
  /** Source dir relative to the test package root. */
  readonly source: string;
  /** The pinned version, checked against what the binary reports. */
  readonly version: string;
  readonly binaries: readonly BinarySpec[];
  readonly tags?: readonly string[];
  readonly ldflags: readonly string[];
  /** Also hash the module's own .go files (the interop peers have code of their own). */
  readonly hashGoFiles?: boolean;
  /** How to ask the first binary for its version, and how to read it (`undefined`: no check). */
  readonly versionArgs?: readonly string[];
  readonly parseVersion?: (output: string) => string | undefined;
}

const K8S_VERSION = '1.36.3';
const k8sLdflags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap(
  (p) => [
    `-X ${p}.gitVersion=v${K8S_VERSION}`,
    `-X ${p}.gitMajor=1`,
    `-X ${p}.gitMinor=36`,
    `-X ${p}.gitTreeState=clean`,
  ],
);

const first = (pattern: RegExp) => (output: string) => pattern.exec(output)?.[1];

export const TESTBIN: Readonly<Record<TestbinModule, ModuleSpec>> = {
  consul: {
    source: 'testbin/consul',
    version: '1.22.6',
    binaries: [{ name: 'consul', pkg: 'github.com/hashicorp/consul' }],
    ldflags: [],
    versionArgs: ['version'],
    parseVersion: first(/^Consul v(\S+)/m),
  },
  'kube-apiserver': {
    source: 'testbin/kube-apiserver',
    version: K8S_VERSION,
    binaries: [{ name: 'kube-apiserver', pkg: 'k8s.io/kubernetes/cmd/kube-apiserver' }],
    tags: ['selinux', 'notest'],
    ldflags: k8sLdflags,
    versionArgs: ['--version'],
    parseVersion: first(/^Kubernetes v(\S+)/m),
  },
  etcd: {
    source: 'testbin/etcd',
    version: '3.6.16',
    binaries: [
      { name: 'etcd', pkg: 'go.etcd.io/etcd/server/v3' },
      { name: 'etcdctl', pkg: 'go.etcd.io/etcd/etcdctl/v3' },
    ],
    ldflags: [],
    versionArgs: ['--version'],
    parseVersion: first(/^etcd Version: (\S+)/m),
  },
  grpcurl: {
    source: 'testbin/grpcurl',
    version: '1.9.4',
    binaries: [{ name: 'grpcurl', pkg: 'github.com/fullstorydev/grpcurl/cmd/grpcurl' }],
    ldflags: ['-X main.version=v1.9.4'],
    versionArgs: ['-version'],
    parseVersion: first(/^grpcurl v(\S+)/m),
  },
  ghz: {
    source: 'testbin/ghz',
    version: '0.121.0',
    binaries: [{ name: 'ghz', pkg: 'github.com/bojand/ghz/cmd/ghz' }],
    ldflags: ['-X main.version=v0.121.0'],
    versionArgs: ['--version'],
    parseVersion: first(/^v?(\d+\.\d+\.\d+\S*)/m),
  },
  'etcd-interop': {
    source: 'interop/etcd-go',
    version: 'grpc-go-1.83.2+etcd-client-3.5.35',
    binaries: [
      { name: 'server', pkg: './server' },
      { name: 'client', pkg: './client' },
    ],
    ldflags: [],
    hashGoFiles: true,
  },
};

export const TESTBIN_MODULES = Object.keys(TESTBIN) as TestbinModule[];

export class TestbinUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TestbinUnavailableError';
  }
}

export interface TestbinBuild {
  readonly module: TestbinModule;
  /** The binaries' paths by name. */
  readonly binaries: Readonly<Record<string, string>>;
  readonly dir: string;
  /** What the binary reports (without a leading `v`), or the pinned version when it has none. */
  readonly version: string;
  /** Time spent building now (0 when cached). */
  readonly buildMs: number;
  readonly cached: boolean;
}

/** ~/.cache/grpc-lb-testbin (or $XDG_CACHE_HOME/…, or $GRPC_LB_TESTBIN_CACHE). */
export function testbinCacheRoot(): string {
  return (
    process.env['GRPC_LB_TESTBIN_CACHE'] ??
    join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'grpc-lb-testbin')
  );
}

const GO_SEARCH_PATH = [...TOOL_SEARCH_PATH, '/usr/local/go/bin', '/usr/lib/go/bin'];

export function findGo(): string | undefined {
  for (const dir of GO_SEARCH_PATH) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  return undefined;
}

/** The test package's root (where testbin/ and interop/ are), from compiled or source files. */
function testRoot(): string {
  let dir = __dirname;
  for (let depth = 0; depth < 6; depth++) {
    if (existsSync(join(dir, 'testbin', 'etcd', 'go.mod'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`test/testbin not found above ${__dirname}`);
}

function hashedFiles(root: string, goFiles: boolean, dir = root): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...hashedFiles(root, goFiles, path));
    else if (/^go\.(mod|sum)$/.test(entry.name) || (goFiles && entry.name.endsWith('.go'))) {
      files.push(relative(root, path));
    }
  }
  return files.sort();
}

function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
    // go.sum is committed: verify against it, never rewrite it (no checksum database needed).
    GOFLAGS: '-mod=readonly -buildvcs=false',
  };
}

let goVersionMemo: string | undefined;
async function goVersion(go: string): Promise<string> {
  goVersionMemo ??= (await run(go, ['version'])).trim();
  return goVersionMemo;
}

async function cacheDir(module: TestbinModule, go: string): Promise<string> {
  const spec = TESTBIN[module];
  const source = join(testRoot(), spec.source);
  const hash = createHash('sha256');
  hash.update(await goVersion(go)).update('\0');
  hash.update(
    JSON.stringify({ tags: spec.tags ?? [], ldflags: spec.ldflags, bins: spec.binaries }),
  );
  for (const file of hashedFiles(source, spec.hashGoFiles ?? false)) {
    hash
      .update(`${file}\0`)
      .update(readFileSync(join(source, file)))
      .update('\0');
  }
  return join(testbinCacheRoot(), `${module}-${spec.version}-${hash.digest('hex').slice(0, 12)}`);
}

function cachedBuild(module: TestbinModule, dir: string): TestbinBuild | undefined {
  const spec = TESTBIN[module];
  const manifest = join(dir, 'testbin.json');
  if (!existsSync(manifest)) return undefined;
  const binaries: Record<string, string> = {};
  for (const binary of spec.binaries) {
    const path = join(dir, binary.name);
    if (!existsSync(path)) return undefined;
    binaries[binary.name] = path;
  }
  const recorded = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  return { module, binaries, dir, version: recorded.version, buildMs: 0, cached: true };
}

export interface BuildOptions {
  /** Build output (go's own, verbose with -x) goes here; default: kept in memory for errors. */
  readonly onOutput?: (chunk: string) => void;
}

/** Runs one go build, streaming its output; rejects with the output's tail. */
function goBuild(
  go: string,
  cwd: string,
  args: readonly string[],
  onOutput: ((chunk: string) => void) | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(go, args, { cwd, env: goEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const collect = (data: Buffer): void => {
      const text = data.toString('utf8');
      tail = (tail + text).slice(-8_000);
      onOutput?.(text);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        reject(
          new TestbinUnavailableError(
            `go ${args.join(' ')} (in ${cwd}) failed: exit ${code ?? signal}\n${tail}`,
          ),
        );
      }
    });
  });
}

const inFlight = new Map<TestbinModule, Promise<TestbinBuild>>();

/**
 * The module's binaries, built now when the cache does not have them. Throws
 * `TestbinUnavailableError` without Go or when the build fails (with the build's output).
 */
export function ensureTestbin(
  module: TestbinModule,
  options: BuildOptions = {},
): Promise<TestbinBuild> {
  let promise = inFlight.get(module);
  if (!promise) {
    promise = buildModule(module, options);
    inFlight.set(module, promise);
    promise.catch(() => inFlight.delete(module));
  }
  return promise;
}

async function buildModule(module: TestbinModule, options: BuildOptions): Promise<TestbinBuild> {
  const go = findGo();
  if (!go) {
    throw new TestbinUnavailableError(
      `go is not installed (not on PATH nor in /usr/local/go/bin): cannot build ${module}`,
    );
  }
  const spec = TESTBIN[module];
  const dir = await cacheDir(module, go);
  const cached = cachedBuild(module, dir);
  if (cached) return cached;

  const source = join(testRoot(), spec.source);
  mkdirSync(testbinCacheRoot(), { recursive: true });
  const staging = mkdtempSync(join(testbinCacheRoot(), `.building-${module}-`));
  const started = performance.now();
  try {
    const ldflags = ['-s', '-w', ...spec.ldflags].join(' ');
    for (const binary of spec.binaries) {
      const args = ['build', '-trimpath', '-ldflags', ldflags];
      if (spec.tags && spec.tags.length > 0) args.push('-tags', spec.tags.join(','));
      args.push('-o', join(staging, binary.name), binary.pkg);
      await goBuild(go, source, args, options.onOutput);
    }
    const firstBinary = join(staging, spec.binaries[0]!.name);
    let version = spec.version;
    if (spec.versionArgs && spec.parseVersion) {
      const output = await run(firstBinary, spec.versionArgs, {
        timeoutMs: 60_000,
        combined: true,
      });
      const reported = spec.parseVersion(output);
      if (reported !== spec.version) {
        throw new TestbinUnavailableError(
          `${module} built, but reports version ${reported ?? '(none)'} instead of ${spec.version}: ${output.slice(0, 500)}`,
        );
      }
      version = reported;
    }
    const buildMs = Math.round(performance.now() - started);
    writeFileSync(
      join(staging, 'testbin.json'),
      `${JSON.stringify({ module, version, buildMs, go: await goVersion(go), builtAt: new Date().toISOString() })}\n`,
    );
    try {
      renameSync(staging, dir);
    } catch (error) {
      // Another process finished the same build first: use its binaries.
      if (!cachedBuild(module, dir)) throw error;
    }
    const built = cachedBuild(module, dir);
    if (!built) throw new Error(`${module}: ${dir} is incomplete after the build`);
    return { ...built, buildMs, cached: false };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * For a test that needs a module: its build, or `undefined` after `t.skip()` when it cannot be
 * had — except with CI=true, where the error is thrown and the test fails.
 */
export async function requireTestbin(
  t: TestContext,
  module: TestbinModule,
): Promise<TestbinBuild | undefined> {
  try {
    return await ensureTestbin(module);
  } catch (error) {
    if (process.env['CI'] === 'true') throw error;
    t.skip(error instanceof Error ? error.message.slice(0, 2_000) : String(error));
    return undefined;
  }
}
