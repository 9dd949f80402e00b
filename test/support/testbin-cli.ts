/**
 * `npm run testbin -- <command>`: the Go-built test servers and tools from the shell.
 *
 *   build [module...]      builds what is missing (all modules by default); one JSON line each
 *   versions               builds what is missing, then prints as its LAST line
 *                          {"consul":…,"kubeApiserver":…,"etcd":…,"grpcurl":…,"ghz":…}
 *   path <module> [binary] prints a binary's path (building it when missing)
 *   start consul|etcd|kube-apiserver [--dir-file F]
 *                          starts one in the background, waits until it is ready, prints one JSON
 *                          line (pid, addresses, dir, kubeconfig…); it runs until `stop`
 *   stop <dir>             stops what `start` started there (by the PIDs it recorded) and removes
 *                          the dir (`--keep` keeps it)
 *
 * Build output goes to stderr; stdout has only the JSON lines.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startConsul } from './consul';
import { startEtcd } from './etcd';
import { startKubeApiserver } from './kube-apiserver';
import { stopPid } from './server-process';
import { ensureTestbin, TESTBIN, TESTBIN_MODULES, type TestbinModule } from './testbin';

const STATE_FILE = 'testbin-state.json';

interface StartedState {
  readonly server: string;
  /** Stopped in this order. */
  readonly pids: number[];
  /** Removed after the stop (the first holds this file). */
  readonly dirs: string[];
  readonly info: Record<string, unknown>;
}

function log(message: string): void {
  process.stderr.write(`[testbin] ${message}\n`);
}

function usage(message: string): never {
  log(message);
  log('usage: npm run testbin -- build [module...] | versions | path <module> [binary] |');
  log('       start consul|etcd|kube-apiserver | stop <dir> [--keep]');
  log(`modules: ${TESTBIN_MODULES.join(', ')}`);
  process.exit(2);
}

function asModule(name: string): TestbinModule {
  if ((TESTBIN_MODULES as string[]).includes(name)) return name as TestbinModule;
  return usage(`unknown module "${name}"`);
}

async function build(module: TestbinModule): Promise<{ version: string }> {
  const started = Date.now();
  log(`${module}: checking the cache, building when missing (go output follows)`);
  const result = await ensureTestbin(module, {
    onOutput: (chunk) => process.stderr.write(chunk),
  });
  const line = {
    module,
    version: result.version,
    cached: result.cached,
    buildMs: result.buildMs,
    dir: result.dir,
    wallMs: Date.now() - started,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  return result;
}

async function start(server: string): Promise<void> {
  let state: StartedState;
  let dir: string;
  if (server === 'consul') {
    const consul = await startConsul({ detached: true });
    dir = consul.dir;
    state = {
      server,
      pids: [consul.pid!],
      dirs: [consul.dir],
      info: { url: consul.url, address: consul.address, version: consul.version },
    };
  } else if (server === 'etcd') {
    const etcd = await startEtcd({ version: '3.6', detached: true });
    dir = etcd.dir;
    state = {
      server,
      pids: [etcd.pid!],
      dirs: [etcd.dir],
      info: { url: etcd.url, endpoint: etcd.endpoint },
    };
  } else if (server === 'kube-apiserver') {
    const kube = await startKubeApiserver({ detached: true });
    dir = kube.dir;
    state = {
      server,
      pids: [kube.pid!, kube.etcd.pid!],
      dirs: [kube.dir, kube.etcd.dir],
      info: {
        url: kube.url,
        kubeconfig: kube.adminKubeconfig,
        caFile: kube.caFile,
        etcd: kube.etcd.url,
        version: kube.version,
      },
    };
  } else {
    return usage(`cannot start "${server}"`);
  }
  writeFileSync(join(dir, STATE_FILE), `${JSON.stringify(state)}\n`);
  process.stdout.write(
    `${JSON.stringify({ server, dir, dirs: state.dirs, pids: state.pids, ...state.info })}\n`,
  );
}

async function stop(dir: string, keep: boolean): Promise<void> {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) usage(`${file} does not exist: nothing started there`);
  const state = JSON.parse(readFileSync(file, 'utf8')) as StartedState;
  for (const pid of state.pids) await stopPid(pid);
  if (!keep) for (const path of state.dirs) rmSync(path, { recursive: true, force: true });
  process.stdout.write(
    `${JSON.stringify({ stopped: state.server, pids: state.pids, kept: keep })}\n`,
  );
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  switch (command) {
    case 'build': {
      const modules = args.length > 0 ? args.map(asModule) : TESTBIN_MODULES;
      for (const module of modules) await build(module);
      return;
    }
    case 'versions': {
      const versions: Record<string, string> = {};
      const keys: [string, TestbinModule][] = [
        ['consul', 'consul'],
        ['kubeApiserver', 'kube-apiserver'],
        ['etcd', 'etcd'],
        ['grpcurl', 'grpcurl'],
        ['ghz', 'ghz'],
      ];
      for (const [key, module] of keys) versions[key] = (await build(module)).version;
      process.stdout.write(`${JSON.stringify(versions)}\n`);
      return;
    }
    case 'path': {
      const module = asModule(args[0] ?? usage('path needs a module'));
      const result = await ensureTestbin(module);
      const binary = args[1] ?? TESTBIN[module].binaries[0]!.name;
      const path = result.binaries[binary];
      if (!path) usage(`${module} has no binary "${binary}"`);
      process.stdout.write(`${path}\n`);
      return;
    }
    case 'start':
      return start(args[0] ?? usage('start needs a server'));
    case 'stop':
      return stop(args[0] ?? usage('stop needs the dir `start` printed'), args.includes('--keep'));
    default:
      usage(`unknown command "${command ?? ''}"`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
