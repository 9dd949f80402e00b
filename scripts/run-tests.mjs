#!/usr/bin/env node
// Runs the compiled tests with node:test. Node 20's `node --test` cannot expand globs, so the
// files are found here. Expects a finished build (`node scripts/run.mjs build`).
//
//   node scripts/run-tests.mjs [--unit] [--node <path>] [--filter <substring>]...
//                              [--summary-json <path>] [--no-etcd36]
//
//   --unit                only packages/*/dist/**/*.test.js (no servers needed); otherwise also
//                         test/dist, examples/dist and bench/dist
//   --node <path>         run the tests with this Node binary instead of the current one
//   --filter <substring>  only test files whose repo-relative path contains it (repeatable: any)
//   --summary-json <path> also write the counts as JSON to <path>
//   --no-etcd36           do not run the etcd-*.test.js files a second time against etcd 3.6
//                         (built from Go modules; the first pass uses Debian's etcd 3.4)
//
// The last line on stdout is always `N passed, N failed` (plus `, N skipped` when any were).

import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

function log(message) {
  process.stderr.write(`[run-tests] ${message}\n`);
}

function usageError(message) {
  log(message);
  log(
    'usage: run-tests.mjs [--unit] [--node <path>] [--filter <substring>] [--summary-json <path>] [--no-etcd36]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const options = {
    unit: false,
    node: process.execPath,
    filters: [],
    summaryJson: undefined,
    etcd36: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = () => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) usageError(`${name} needs a value`);
      return next;
    };
    switch (name) {
      case '--unit':
        options.unit = true;
        break;
      case '--node':
        options.node = resolve(value());
        break;
      case '--filter':
        options.filters.push(value());
        break;
      case '--no-etcd36':
        options.etcd36 = false;
        break;
      case '--summary-json':
        options.summaryJson = resolve(value());
        break;
      default:
        usageError(`unknown argument "${arg}"`);
    }
  }
  return options;
}

/** Every `*.test.js` below dir, skipping node_modules. */
function findTests(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') found.push(...findTests(path));
    } else if (entry.isFile() && entry.name.endsWith('.test.js')) {
      found.push(path);
    }
  }
  return found;
}

function testFiles(options) {
  const packagesDir = join(root, 'packages');
  const packages = existsSync(packagesDir)
    ? readdirSync(packagesDir, { withFileTypes: true }).filter((e) => e.isDirectory())
    : [];
  const files = packages.flatMap((p) => findTests(join(packagesDir, p.name, 'dist')));
  if (!options.unit) {
    files.push(...findTests(join(root, 'test', 'dist')));
    files.push(...findTests(join(root, 'examples', 'dist')));
    files.push(...findTests(join(root, 'bench', 'dist')));
  }
  const rel = files.map((f) => relative(root, f)).sort();
  if (options.filters.length === 0) return rel;
  return rel.filter((f) => options.filters.some((s) => f.includes(s)));
}

/** The run's totals from the unindented `# name N` lines node:test's TAP reporter ends with. */
function parseTapSummary(tap) {
  const counts = {};
  for (const match of tap.matchAll(/^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) {
    counts[match[1]] = Number(match[2]);
  }
  return counts;
}

function summaryLine({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
}

function writeSummary(path, summary) {
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(summary, null, 2)}\n`);
}

/** One `node --test` run; its TAP counts and what went wrong starting or ending it. */
function runPass(node, files, env) {
  const tmp = mkdtempSync(join(tmpdir(), 'grpc-lb-tests-'));
  const tapFile = join(tmp, 'report.tap');
  try {
    const result = spawnSync(
      node,
      [
        '--test',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        '--test-reporter=tap',
        `--test-reporter-destination=${tapFile}`,
        '--test-concurrency=2',
        ...files,
      ],
      { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } },
    );
    const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
    let problem;
    if (result.error) problem = `could not start node --test: ${result.error.message}`;
    else if (result.status !== 0)
      problem = `node --test exited with ${result.signal ?? result.status}`;
    return { counts: parseTapSummary(tap), problem };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const files = testFiles(options);
  const base = { passed: 0, failed: 0, skipped: 0, todo: 0, cancelled: 0, tests: 0, files };

  if (files.length === 0) {
    const scope = options.unit ? 'unit test files' : 'test files';
    const filter = options.filters.length > 0 ? ` matching ${options.filters.join(' | ')}` : '';
    log(`no ${scope}${filter} found (did the build run?)`);
    writeSummary(options.summaryJson, { ...base, exitCode: 1, error: 'no test files found' });
    process.stdout.write(`${summaryLine(base)}\n`);
    return 1;
  }

  const versionProbe = spawnSync(options.node, ['--version'], { encoding: 'utf8' });
  if (versionProbe.error || versionProbe.status !== 0) {
    log(`cannot run ${options.node}: ${versionProbe.error?.message ?? versionProbe.stderr}`);
    writeSummary(options.summaryJson, { ...base, exitCode: 1, error: 'node binary not runnable' });
    process.stdout.write(`${summaryLine(base)}\n`);
    return 1;
  }
  const nodeVersion = versionProbe.stdout.trim();
  log(`running ${files.length} test file(s) with node ${nodeVersion} (${options.node})`);

  const passes = [{ label: 'all', files, env: {} }];
  // The etcd tests run again against etcd 3.6 (built from Go modules), the version users run,
  // after Debian's 3.4 in the first pass.
  const etcdFiles = files.filter((f) => /(^|\/)etcd-[^/]*\.test\.js$/.test(f));
  if (!options.unit && options.etcd36 && etcdFiles.length > 0) {
    passes.push({ label: 'etcd 3.6', files: etcdFiles, env: { GRPC_LB_ETCD_VERSION: '3.6' } });
  }
  const counts = {};
  const problems = [];
  for (const pass of passes) {
    if (pass.label !== 'all') {
      log(`again with ${pass.label}: ${pass.files.length} test file(s)`);
    }
    const result = runPass(options.node, pass.files, pass.env);
    if (result.problem) problems.push(`${pass.label}: ${result.problem}`);
    for (const [name, value] of Object.entries(result.counts)) {
      counts[name] = (counts[name] ?? 0) + value;
    }
    if (result.counts.pass === undefined)
      problems.push(`${pass.label}: node --test wrote no TAP summary`);
  }

  const summary = {
    ...base,
    passed: counts.pass ?? 0,
    failed: (counts.fail ?? 0) + (counts.cancelled ?? 0),
    skipped: counts.skipped ?? 0,
    todo: counts.todo ?? 0,
    cancelled: counts.cancelled ?? 0,
    tests: counts.tests ?? 0,
    node: nodeVersion,
    passes: passes.map((p) => p.label),
  };

  let exitCode = 0;
  for (const problem of problems) log(problem);
  if (problems.length > 0 || summary.failed > 0) {
    exitCode = 1;
  } else if (summary.tests === 0) {
    log('no tests ran');
    exitCode = 1;
  }

  writeSummary(options.summaryJson, { ...summary, exitCode });
  process.stdout.write(`${summaryLine(summary)}\n`);
  return exitCode;
}

process.exitCode = main();
