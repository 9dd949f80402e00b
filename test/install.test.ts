/**
 * Installing grpc-lb from a user's own project: every publishable package is packed with
 * `pnpm pack`, each tarball is checked (no build leftovers or tests, every entry point, source map
 * and relative require resolving inside it, no `workspace:` range, every bare require declared),
 * then the tarballs and `@grpc/grpc-js` from the registry are installed with npm into a fresh
 * project in the OS temp directory, outside the workspace. From there one ESM file and one
 * CommonJS file each make a balanced call to a real backend through a `static:` target, and the
 * installed `grpc-lb` command prints its help.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BackendSet, startBackends } from './harness';

const ROOT = resolve(__dirname, '..', '..');
const PNPM_VERSION = '10.34.9';
const GRPC_JS_RANGE = '~1.14';
const TYPES_NODE_RANGE = '^20.19.0';

interface Manifest {
  readonly name: string;
  readonly version?: string;
  readonly private?: boolean;
  readonly main?: string;
  readonly types?: string;
  readonly bin?: string | Record<string, string>;
  readonly exports?: unknown;
  readonly dependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

interface Publishable {
  readonly name: string;
  readonly dir: string;
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function readManifest(path: string): Manifest {
  return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
}

/** packages/* that are not private, by name. */
function publishablePackages(): Publishable[] {
  const dir = join(ROOT, 'packages');
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'package.json')))
    .map((e) => ({
      dir: join(dir, e.name),
      manifest: readManifest(join(dir, e.name, 'package.json')),
    }))
    .filter((p) => p.manifest.private !== true)
    .map((p) => ({ name: p.manifest.name, dir: p.dir }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Runs a command to its end, collecting its output; never rejects on a non-zero exit. */
function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    timer.unref();
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

function describeRun(what: string, result: RunResult): string {
  const end = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
  return `${what} ${end}\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${result.stderr.slice(-4000)}`;
}

/** Every file below dir, as paths relative to it with '/' separators. */
function listFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(relative(dir, path).split(sep).join('/'));
    }
  };
  walk(dir);
  return found.sort();
}

/** Every string leaf of a package.json `exports` value. */
function exportTargets(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(exportTargets);
  if (value !== null && typeof value === 'object')
    return Object.values(value).flatMap(exportTargets);
  return [];
}

function packageNameOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const BUILTINS = new Set(builtinModules.map((m) => m.replace(/^node:/, '')));

/**
 * What is wrong with one unpacked tarball (its `package/` directory), one line per problem, each
 * naming the file. Empty when the tarball is clean.
 */
function tarballProblems(dir: string): string[] {
  const problems: string[] = [];
  const files = listFiles(dir);
  const has = (path: string) => files.includes(path);
  const manifest = readManifest(join(dir, 'package.json'));

  for (const file of files) {
    const base = file.slice(file.lastIndexOf('/') + 1);
    if (base.endsWith('.tsbuildinfo')) problems.push(`${file}: a TypeScript build-info file`);
    else if (/\.test\.[cm]?[jt]s(\.map)?$|\.test\.d\.[cm]?ts(\.map)?$/.test(base))
      problems.push(`${file}: a test file`);
    else if (file.split('/').includes('testing')) problems.push(`${file}: a test kit (testing/)`);
  }

  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies'] as const) {
    for (const [name, range] of Object.entries(manifest[field] ?? {})) {
      if (range.startsWith('workspace:'))
        problems.push(`package.json: ${field}.${name} is "${range}" (not rewritten by pnpm pack)`);
    }
  }

  const entries: [string, string][] = [];
  if (manifest.main !== undefined) entries.push(['main', manifest.main]);
  if (manifest.types !== undefined) entries.push(['types', manifest.types]);
  if (typeof manifest.bin === 'string') entries.push(['bin', manifest.bin]);
  else
    for (const [name, path] of Object.entries(manifest.bin ?? {}))
      entries.push([`bin.${name}`, path]);
  for (const target of exportTargets(manifest.exports)) entries.push(['exports', target]);
  for (const [field, target] of entries) {
    const path = target.replace(/^\.\//, '');
    if (!has(path)) problems.push(`package.json: ${field} "${target}" is not in the tarball`);
  }

  const declared = new Set([
    manifest.name,
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
  ]);
  for (const file of files) {
    const isJs = /\.[cm]?js$/.test(file);
    if (!isJs && !/\.d\.[cm]?ts$/.test(file)) continue;
    const text = readFileSync(join(dir, file), 'utf8');
    const fileDir = dirname(file) === '.' ? '' : `${dirname(file)}/`;
    const inTarball = (path: string) => {
      const normalized = relative(dir, resolve(dir, path)).split(sep).join('/');
      return !normalized.startsWith('..') && has(normalized);
    };

    const mapUrl = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
    if (mapUrl !== undefined && !mapUrl.startsWith('data:')) {
      const mapPath = `${fileDir}${mapUrl}`;
      if (!inTarball(mapPath)) {
        problems.push(`${file}: its source map ${mapUrl} is not in the tarball`);
      } else {
        const map = JSON.parse(readFileSync(join(dir, mapPath), 'utf8')) as {
          sources?: string[];
          sourceRoot?: string;
        };
        const mapDir = dirname(mapPath);
        for (const source of map.sources ?? []) {
          const sourcePath = join(mapDir, map.sourceRoot ?? '', source);
          if (!inTarball(sourcePath))
            problems.push(`${mapPath}: its source ${source} is not in the tarball`);
        }
      }
    }

    if (!isJs) continue;
    for (const match of text.matchAll(/\brequire\((['"])([^'"]+)\1\)/g)) {
      const specifier = match[2] ?? '';
      if (specifier.startsWith('.')) {
        const base = `${fileDir}${specifier}`;
        const candidates = [base, `${base}.js`, `${base}.json`, `${base}/index.js`];
        if (!candidates.some(inTarball))
          problems.push(`${file}: require('${specifier}') does not resolve inside the tarball`);
      } else if (!specifier.startsWith('node:') && !BUILTINS.has(specifier)) {
        const name = packageNameOf(specifier);
        if (!declared.has(name))
          problems.push(
            `${file}: require('${specifier}') but ${name} is not a dependency or peer dependency`,
          );
      }
    }
  }
  return problems;
}

/** The greeter's codec by hand (string fields only), so the consumer needs no proto loader. */
const CODEC_CJS = `'use strict';
function encodeHelloRequest(request) {
  const name = Buffer.from(String(request.name), 'utf8');
  if (name.length > 127) throw new Error('name too long for this codec');
  return Buffer.concat([Buffer.from([0x0a, name.length]), name]);
}
function readVarint(buffer, state) {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = buffer[state.offset++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
  }
}
function decodeHelloReply(buffer) {
  const names = { 1: 'message', 2: 'backend', 3: 'address' };
  const reply = {};
  const state = { offset: 0 };
  while (state.offset < buffer.length) {
    const tag = readVarint(buffer, state);
    if ((tag & 7) !== 2) throw new Error('unexpected wire type ' + (tag & 7));
    const length = readVarint(buffer, state);
    const bytes = buffer.subarray(state.offset, state.offset + length);
    state.offset += length;
    const field = names[tag >> 3];
    if (field) reply[field] = bytes.toString('utf8');
  }
  return reply;
}
function greeterClient(grpc) {
  return grpc.makeGenericClientConstructor(
    {
      sayHello: {
        path: '/grpclb.test.Greeter/SayHello',
        requestStream: false,
        responseStream: false,
        requestSerialize: encodeHelloRequest,
        responseDeserialize: decodeHelloReply,
      },
    },
    'Greeter',
  );
}
function sayHello(client, name) {
  return new Promise((resolve, reject) => {
    client.sayHello({ name }, { deadline: Date.now() + 10000 }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
  });
}
module.exports = { greeterClient, sayHello };
`;

/** ESM: named imports from the CommonJS build, every CommonJS export visible as an ESM name. */
const CONSUMER_MJS = `import * as grpc from '@grpc/grpc-js';
import { register, ROUND_ROBIN_POLICY, validateTarget } from '@grpc-lb/core';
import { createRequire } from 'node:module';
import codec from './codec.cjs';

const require = createRequire(import.meta.url);
const [target, packagesJson] = process.argv.slice(2);
const missingNamedExports = {};
for (const name of JSON.parse(packagesJson)) {
  const namespace = await import(name);
  const missing = Object.keys(require(name)).filter((key) => !(key in namespace));
  if (missing.length > 0) missingNamedExports[name] = missing;
}
validateTarget(target);
const registeredAtImport = grpc.experimental.isLoadBalancerNameRegistered(ROUND_ROBIN_POLICY);
const registration = register({ grpc });
const Greeter = codec.greeterClient(grpc);
const client = new Greeter(target, grpc.credentials.createInsecure());
try {
  const reply = await codec.sayHello(client, 'esm');
  console.log(JSON.stringify({
    module: 'esm',
    core: import.meta.resolve('@grpc-lb/core'),
    registeredAtImport,
    schemes: registration.schemes,
    policies: registration.policies,
    missingNamedExports,
    reply,
  }));
} finally {
  client.close();
}
`;

const CONSUMER_CJS = `'use strict';
const grpc = require('@grpc/grpc-js');
const { register, ROUND_ROBIN_POLICY, validateTarget } = require('@grpc-lb/core');
const codec = require('./codec.cjs');

async function main() {
  const [target, packagesJson] = process.argv.slice(2);
  for (const name of JSON.parse(packagesJson)) require(name);
  validateTarget(target);
  const registeredAtImport = grpc.experimental.isLoadBalancerNameRegistered(ROUND_ROBIN_POLICY);
  const registration = register({ grpc });
  const Greeter = codec.greeterClient(grpc);
  const client = new Greeter(target, grpc.credentials.createInsecure());
  try {
    const reply = await codec.sayHello(client, 'cjs');
    console.log(JSON.stringify({
      module: 'cjs',
      core: require.resolve('@grpc-lb/core'),
      registeredAtImport,
      schemes: registration.schemes,
      policies: registration.policies,
      reply,
    }));
  } finally {
    client.close();
  }
}
main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

/** TypeScript consumers (checked, not run): the declarations found through `exports` by node16 resolution. */
const TYPED_MTS = `import * as grpc from '@grpc/grpc-js';
import { register, type Registration } from '@grpc-lb/core';
import { registerDns } from '@grpc-lb/resolver-dns';
import { registerK8s } from '@grpc-lb/resolver-k8s';
import { registerEtcd } from '@grpc-lb/resolver-etcd';
import { registerConsul } from '@grpc-lb/resolver-consul';
import { translateIstio } from '@grpc-lb/istio';
export type Cli = typeof import('@grpc-lb/cli');
const registration: Registration = register({ grpc });
export const used = [registration.schemes, registerDns, registerK8s, registerEtcd, registerConsul, translateIstio];
`;

const TYPED_CTS = `import grpc = require('@grpc/grpc-js');
import core = require('@grpc-lb/core');
import k8s = require('@grpc-lb/resolver-k8s');
const registration: core.Registration = core.register({
  grpc,
  resolvers: [k8s.createK8sResolverFactory()],
});
export = registration.schemes;
`;

const TYPED_TSCONFIG = {
  compilerOptions: {
    module: 'node16',
    moduleResolution: 'node16',
    target: 'ES2022',
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
  },
  files: ['typed.mts', 'typed.cts'],
};

/**
 * Environment for commands in the consumer project: nothing pointing back at the workspace
 * (`npm test` exports its package's fields and its local prefix); npm's other settings stay.
 */
function consumerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_PATH'];
  delete env['NODE_OPTIONS'];
  for (const key of Object.keys(env)) {
    const npmRun = key.startsWith('npm_') && !key.startsWith('npm_config_');
    if (npmRun || key === 'npm_config_local_prefix') delete env[key];
  }
  return env;
}

/** The problems of the tarballs that have any, one block per package. */
function problemReport(problems: ReadonlyMap<string, readonly string[]>): string[] {
  return [...problems]
    .filter(([, list]) => list.length > 0)
    .map(([name, list]) => `${name}:\n  ${list.join('\n  ')}`);
}

function lastJsonLine(output: string): Record<string, unknown> {
  const line = output.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

describe('installing the packed packages into a project outside the workspace', () => {
  const packages = publishablePackages();
  let work: string;
  let project: string;
  let set: BackendSet | undefined;
  let target: string;
  const problems = new Map<string, string[]>();

  before(
    async () => {
      work = mkdtempSync(join(tmpdir(), 'grpc-lb-install-'));
      assert.ok(
        relative(ROOT, work).startsWith('..'),
        `the temp directory ${work} is inside the workspace ${ROOT}; set TMPDIR elsewhere`,
      );
      const tarballs = join(work, 'tarballs');
      const unpacked = join(work, 'unpacked');
      project = join(work, 'project');
      mkdirSync(tarballs);
      mkdirSync(unpacked);
      mkdirSync(project);

      const filters = packages.flatMap((p) => ['--filter', p.name]);
      const packed = await run(
        'npx',
        ['-y', `pnpm@${PNPM_VERSION}`, '-r', ...filters, 'pack', '--pack-destination', tarballs],
        { cwd: ROOT, timeoutMs: 120_000 },
      );
      assert.equal(packed.code, 0, describeRun('pnpm pack', packed));

      const files: string[] = [];
      for (const pkg of packages) {
        const manifest = readManifest(join(pkg.dir, 'package.json'));
        const file = `${pkg.name.replace(/^@/, '').replace('/', '-')}-${manifest.version}.tgz`;
        assert.ok(existsSync(join(tarballs, file)), `pnpm pack made no ${file} for ${pkg.name}`);
        files.push(join(tarballs, file));
        const into = join(unpacked, file.replace(/\.tgz$/, ''));
        mkdirSync(into);
        const untar = await run('tar', ['-xzf', join(tarballs, file), '-C', into], {
          cwd: work,
          timeoutMs: 30_000,
        });
        assert.equal(untar.code, 0, describeRun(`tar -xzf ${file}`, untar));
        problems.set(pkg.name, tarballProblems(join(into, 'package')));
      }

      writeFileSync(
        join(project, 'package.json'),
        `${JSON.stringify({ name: 'grpc-lb-install-check', version: '0.0.0', private: true }, null, 2)}\n`,
      );
      const installed = await run(
        'npm',
        [
          'install',
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          ...files,
          `@grpc/grpc-js@${GRPC_JS_RANGE}`,
          `@types/node@${TYPES_NODE_RANGE}`,
        ],
        { cwd: project, env: consumerEnv(), timeoutMs: 240_000 },
      );
      assert.equal(
        installed.code,
        0,
        `${describeRun('npm install of the tarballs', installed)}\n${problemReport(problems).join('\n')}`,
      );

      writeFileSync(join(project, 'codec.cjs'), CODEC_CJS);
      writeFileSync(join(project, 'consumer.mjs'), CONSUMER_MJS);
      writeFileSync(join(project, 'consumer.cjs'), CONSUMER_CJS);
      writeFileSync(join(project, 'typed.mts'), TYPED_MTS);
      writeFileSync(join(project, 'typed.cts'), TYPED_CTS);
      writeFileSync(join(project, 'tsconfig.json'), `${JSON.stringify(TYPED_TSCONFIG, null, 2)}\n`);

      set = await startBackends({ count: 1 });
      target = `static:///${set.addresses.join(',')}`;
    },
    { timeout: 420_000 },
  );

  after(async () => {
    await set?.stopAll();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test('every tarball is clean: no build info, tests or test kits; entry points, source maps, requires and ranges resolve', () => {
    const report = problemReport(problems);
    assert.equal(problems.size, packages.length);
    assert.deepEqual(report, [], `broken tarballs:\n${report.join('\n')}`);
  });

  async function consumer(file: string): Promise<Record<string, unknown>> {
    const result = await run(
      process.execPath,
      [file, target, JSON.stringify(packages.map((p) => p.name))],
      { cwd: project, env: consumerEnv(), timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, describeRun(`node ${file}`, result));
    const out = lastJsonLine(result.stdout);
    const reply = out['reply'] as Record<string, unknown> | undefined;
    assert.equal(reply?.['address'], set?.addresses[0], `${file}: the reply came from elsewhere`);
    assert.equal(reply?.['message'], `Hello ${out['module'] as string}`);
    assert.equal(
      out['registeredAtImport'],
      false,
      `${file}: importing the packages registered a policy before register() was called`,
    );
    assert.ok(
      (out['schemes'] as string[]).includes('static'),
      `${file}: register() did not install static:`,
    );
    assert.ok(
      (out['policies'] as string[]).includes('grpc-lb.round_robin'),
      `${file}: register() did not install grpc-lb.round_robin`,
    );
    const core = String(out['core']).replace(/^file:\/\//, '');
    assert.ok(
      core.startsWith(join(project, 'node_modules', '@grpc-lb', 'core')),
      `${file}: @grpc-lb/core resolved to ${core}, not to the installed copy`,
    );
    return out;
  }

  test('an ESM file imports register by name from the CommonJS build and makes a balanced call', async () => {
    const out = await consumer('consumer.mjs');
    assert.deepEqual(
      out['missingNamedExports'],
      {},
      'CommonJS exports that an ESM import cannot name (not detected by cjs-module-lexer)',
    );
  });

  test('a CommonJS file requires every package and makes a balanced call', async () => {
    await consumer('consumer.cjs');
  });

  test("TypeScript finds every package's declarations from an ES module and a CommonJS file (node16)", async () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], {
      cwd: project,
      env: consumerEnv(),
      timeoutMs: 120_000,
    });
    assert.equal(
      result.code,
      0,
      describeRun('tsc -p tsconfig.json (typed.mts, typed.cts)', result),
    );
  });

  test('the installed grpc-lb command prints its help', async () => {
    const bin = join(project, 'node_modules', '.bin', 'grpc-lb');
    const result = await run(bin, ['--help'], {
      cwd: project,
      env: consumerEnv(),
      timeoutMs: 30_000,
    });
    assert.equal(result.code, 0, describeRun('grpc-lb --help', result));
    assert.match(result.stdout, /Usage: grpc-lb/);
    assert.match(result.stdout, /istio/);
  });
});
