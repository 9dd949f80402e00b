#!/usr/bin/env node
// Entry point for `npm run build|test|demo|example`. It runs before anything is installed, so it
// uses Node built-ins only, and it installs the workspace itself when the install is missing or
// stale.
//
//   node scripts/run.mjs build
//   node scripts/run.mjs test [run-tests.mjs flags...]
//   node scripts/run.mjs example <name> [args...]
//   node scripts/run.mjs demo [args...]          (= example hello)
//   node scripts/run.mjs bench [--quick] [args...]
//   node scripts/run.mjs docs [typedoc flags...]   (the API reference in docs/api, from doc comments)
//   node scripts/run.mjs testbin <build|versions|path|start|stop> [args...]   (test/testbin)

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const PNPM_VERSION = '10.34.9';
const STAMP = join(root, 'node_modules', '.grpc-lb-installed');

function log(message) {
  process.stderr.write(`[run] ${message}\n`);
}

function fail(message, code = 1) {
  log(message);
  process.exit(code);
}

/** Exit code of a finished spawnSync child; a signal-killed child counts as a failure. */
function exitCodeOf(result) {
  if (result.error) {
    log(`could not start ${result.error.path ?? 'process'}: ${result.error.message}`);
    return 1;
  }
  if (result.signal) return 128 + (signalNumber(result.signal) ?? 1);
  return result.status ?? 1;
}

function signalNumber(signal) {
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal];
}

function runSync(command, args, what) {
  const shown = [command, ...args].map((a) => {
    if (a === process.execPath) return 'node';
    const rel = isAbsolute(a) ? relative(root, a) : a;
    return rel.startsWith('..') ? a : rel;
  });
  log(`${what}: ${shown.join(' ')}`);
  return exitCodeOf(spawnSync(command, args, { cwd: root, stdio: 'inherit' }));
}

/** Absolute path of an installed package's bin script, run with this Node rather than a shim. */
function packageBin(pkg, bin) {
  const dir = join(root, 'node_modules', pkg);
  const manifestPath = join(dir, 'package.json');
  if (!existsSync(manifestPath)) fail(`${pkg} is not installed in ${join(root, 'node_modules')}`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const entry = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[bin];
  if (!entry) fail(`${pkg} has no "${bin}" bin`);
  return join(dir, entry);
}

// ---------------------------------------------------------------------------------------------
// install

/** Directories of the workspace packages, from the simple globs pnpm-workspace.yaml uses. */
function workspaceDirs() {
  const yaml = readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8');
  const dirs = [root];
  let inPackages = false;
  for (const line of yaml.split('\n')) {
    if (/^packages:\s*$/.test(line)) {
      inPackages = true;
      continue;
    }
    if (/^\S/.test(line)) inPackages = false;
    const match = inPackages && /^\s+-\s+['"]?([^'"#]+?)['"]?\s*(#.*)?$/.exec(line);
    if (!match) continue;
    const pattern = match[1];
    if (pattern.startsWith('!')) continue;
    if (pattern.endsWith('/*') || pattern.endsWith('/**')) {
      const parent = join(root, pattern.replace(/\/\*\*?$/, ''));
      if (!existsSync(parent)) continue;
      for (const entry of readdirSync(parent, { withFileTypes: true })) {
        if (entry.isDirectory()) dirs.push(join(parent, entry.name));
      }
    } else {
      dirs.push(join(root, pattern));
    }
  }
  return dirs;
}

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Why an install is needed, or undefined when node_modules is up to date. */
function installReason() {
  if (!existsSync(join(root, 'node_modules', '.modules.yaml'))) return 'node_modules is missing';
  const stamp = mtimeMs(STAMP);
  if (stamp === undefined) return `${relative(root, STAMP)} is missing`;
  const inputs = [
    join(root, 'pnpm-lock.yaml'),
    join(root, 'pnpm-workspace.yaml'),
    ...workspaceDirs().map((dir) => join(dir, 'package.json')),
  ];
  for (const input of inputs) {
    const mtime = mtimeMs(input);
    if (mtime !== undefined && mtime > stamp) return `${relative(root, input)} changed`;
  }
  return undefined;
}

function pnpmCommand() {
  const probe = spawnSync('pnpm', ['--version'], { cwd: root, stdio: 'ignore' });
  if (!probe.error && probe.status === 0) return { command: 'pnpm', args: [] };
  // corepack cannot fetch pnpm on these machines (signature check against the registry mirror).
  return { command: 'npx', args: ['-y', `pnpm@${PNPM_VERSION}`] };
}

function install() {
  const reason = installReason();
  if (!reason) return;
  const pnpm = pnpmCommand();
  log(`installing dependencies (${reason}) with ${pnpm.command === 'pnpm' ? 'pnpm' : 'npx pnpm'}`);
  const code = runSync(pnpm.command, [...pnpm.args, 'install', '--frozen-lockfile'], 'install');
  if (code !== 0) fail(`pnpm install failed (exit ${code})`, code);
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}

// ---------------------------------------------------------------------------------------------
// commands

function build() {
  install();
  return runSync(process.execPath, [packageBin('typescript', 'tsc'), '--build'], 'build');
}

function availableExamples() {
  const dir = join(root, 'examples');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'main.ts')))
    .map((e) => e.name)
    .sort();
}

async function example(name, args) {
  const names = availableExamples();
  const list = names.length > 0 ? names.join(', ') : '(none)';
  if (!name) fail(`usage: npm run example -- <name> [args...]\navailable examples: ${list}`, 2);
  if (!names.includes(name)) fail(`unknown example "${name}"; available examples: ${list}`, 2);

  return buildAndRun(join(root, 'examples', 'dist', name, 'main.js'), args, 'example');
}

/** `npm run bench -- [--quick] ...`: the load generator and scenarios in bench/. */
async function bench(args) {
  return buildAndRun(join(root, 'bench', 'dist', 'cli.js'), args, 'bench');
}

/**
 * `npm run docs`: the API reference in docs/api (Markdown, one page per package), generated by
 * TypeDoc from the doc comments of every package's public entry point (typedoc.json). The pages
 * are committed; test/api-docs.test.ts fails when they no longer match the sources.
 */
function docs(args) {
  const buildCode = build();
  if (buildCode !== 0) fail(`build failed (exit ${buildCode})`, buildCode);
  const typedoc = packageBin('typedoc', 'typedoc');
  return runSync(process.execPath, [typedoc, ...args], 'docs');
}

/** `npm run testbin -- ...`: the Go-built test servers and tools (test/support/testbin-cli.ts). */
async function testbin(args) {
  return buildAndRun(join(root, 'test', 'dist', 'support', 'testbin-cli.js'), args, 'testbin');
}

async function buildAndRun(main, args, what) {
  const buildCode = build();
  if (buildCode !== 0) fail(`build failed (exit ${buildCode})`, buildCode);
  if (!existsSync(main)) fail(`build did not produce ${relative(root, main)}`);

  log(`${what}: node ${relative(root, main)} ${args.join(' ')}`.trimEnd());
  const child = spawn(process.execPath, [main, ...args], { cwd: root, stdio: 'inherit' });
  // The child shares the terminal's process group and sees Ctrl-C itself; forward only what is
  // sent to this process alone (e.g. `kill <pid>` from a supervisor).
  const forward = (signal) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGINT', () => {});
  const code = await new Promise((resolve) => {
    child.on('error', (error) => {
      log(`could not start ${what}: ${error.message}`);
      resolve(1);
    });
    child.on('exit', (status, signal) =>
      resolve(signal ? 128 + (signalNumber(signal) ?? 1) : (status ?? 1)),
    );
  });
  return code;
}

function test(args) {
  const buildCode = build();
  if (buildCode !== 0) {
    log(`build failed (exit ${buildCode}); not running lint or tests`);
    return buildCode;
  }
  const failed = [];
  const eslint = packageBin('eslint', 'eslint');
  if (runSync(process.execPath, [eslint, '--max-warnings', '0', '.'], 'lint') !== 0) {
    failed.push('lint');
  }
  const prettier = packageBin('prettier', 'prettier');
  if (runSync(process.execPath, [prettier, '--check', '.'], 'format') !== 0) {
    failed.push('format check');
  }
  const provision = join(root, 'scripts', 'provision.mjs');
  if (runSync(process.execPath, [provision], 'provision test servers') !== 0) {
    failed.push('provisioning test servers');
  }
  const runTests = join(root, 'scripts', 'run-tests.mjs');
  if (runSync(process.execPath, [runTests, ...args], 'tests') !== 0) failed.push('tests');
  if (failed.length > 0) {
    log(`FAILED: ${failed.join(', ')}`);
    return 1;
  }
  return 0;
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  switch (command) {
    case 'install':
      install();
      return 0;
    case 'build':
      return build();
    case 'example':
      return example(args[0], args.slice(1));
    case 'demo':
      return example('hello', args);
    case 'bench':
      return bench(args);
    case 'docs':
      return docs(args);
    case 'test':
      return test(args);
    case 'testbin':
      return testbin(args);
    default:
      fail(
        `unknown command "${command ?? ''}"; usage: node scripts/run.mjs ` +
          '<install|build|test|demo|bench|docs|testbin|example <name>> [args...]',
        2,
      );
  }
}

process.exitCode = await main();
