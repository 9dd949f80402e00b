/**
 * examples/headless-dns keeps its promise: with grpc-lb a new DNS record gets calls within the
 * interval and a removed one stops getting them, with no failed call; grpc-js's built-in `dns:`
 * never calls the new backend.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireBind9 } from './support/bind9';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');

test('examples/headless-dns: the new record gets calls within the interval, grpc-js built-in dns never calls it', async (t) => {
  if (!requireBind9(t)) return;
  const main = path.join(root, 'examples', 'dist', 'headless-dns', 'main.js');
  const { stdout } = await run(process.execPath, [main], { cwd: root, timeout: 120_000 });
  const lines = stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(summary), [
    'example',
    'intervalMs',
    'newEndpointFirstCallMs',
    'removedEndpointLastCallMs',
    'errors',
    'grpcJsBuiltinSawNewEndpoint',
  ]);
  assert.equal(summary['example'], 'headless-dns');
  const interval = summary['intervalMs'] as number;
  assert.equal(interval, 1_000);
  // One interval, plus a connection handshake and a loaded machine's scheduling.
  const slack = 1_500;
  assert.ok((summary['newEndpointFirstCallMs'] as number) <= interval + slack, stdout);
  assert.ok((summary['removedEndpointLastCallMs'] as number) <= interval + slack, stdout);
  assert.equal(summary['errors'], 0);
  assert.equal(summary['grpcJsBuiltinSawNewEndpoint'], false);
});
