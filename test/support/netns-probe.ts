/**
 * A script for test/netns.test.ts: re-runs itself in a test network namespace, puts two pod-like
 * addresses on that namespace's lo, starts a backend on one and calls it through
 * `static:///10.244.N.2:port`, then prints one JSON line: the namespace, the backend's host, the
 * reply and what `ip -o addr` shows inside. With `--hang` it prints `{"netns": …}` once inside and
 * waits to be killed.
 */
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import { createGreeterClient, sayHello, startBackends } from '../harness';
import { reexecInTestNetns } from './netns';
import { createPodAddresses } from './pod-addresses';

async function main(): Promise<void> {
  const netns = await reexecInTestNetns();
  if (process.argv.includes('--hang')) {
    process.stdout.write(`${JSON.stringify({ netns, pid: process.pid })}\n`);
    setInterval(() => undefined, 1_000);
    return;
  }
  register({ grpc });
  const pods = await createPodAddresses(2);
  const set = await startBackends({ count: 1, network: pods.network });
  try {
    const backend = set.backends[0]!;
    const client = createGreeterClient(`static:///${backend.host}:${set.port}`);
    const reply = await sayHello(client, 'netns');
    client.close();
    const addr = spawnSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).stdout;
    process.stdout.write(`${JSON.stringify({ netns, host: backend.host, reply, addr })}\n`);
  } finally {
    await set.stopAll();
    await pods.remove();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
