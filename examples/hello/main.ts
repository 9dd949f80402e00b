/**
 * The demo: three backends answering Hello / Bonjour / Hola on 127.0.0.2-4 (one port, like three
 * pods behind a headless Service), one generated-style client on a `static:` target, 10,000 calls.
 * Every call is balanced: the counts come out even, with no proxy in between.
 *
 *   npm run demo                      # or: npm run example -- hello [--calls N] [--concurrency N]
 */
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc-lb/core';
import { loadGreeterService, sayHello, startBackends } from '@grpc-lb/test/harness';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} needs a positive integer`);
  return value;
}

async function main(): Promise<number> {
  const calls = flag('calls', 10_000);
  const concurrency = flag('concurrency', 50);

  register({ grpc });
  const backends = await startBackends({ count: 3, greetings: ['Hello', 'Bonjour', 'Hola'] });
  const target = `static:///${backends.addresses.join(',')}`;
  console.log(`3 backends up; client target ${target}`);

  const Greeter = loadGreeterService();
  const client = new Greeter(target, grpc.credentials.createInsecure());
  const lines = new Map<string, number>();
  const perBackend: Record<string, number> = Object.fromEntries(
    backends.addresses.map((a) => [a, 0]),
  );
  const errors = new Map<string, number>();
  let issued = 0;
  const started = performance.now();
  let elapsedMs = 0;
  try {
    const worker = async (): Promise<void> => {
      while (issued < calls) {
        issued++;
        try {
          const reply = await sayHello(client, 'grpc-lb');
          const line = `${reply.message}(${reply.address})`;
          lines.set(line, (lines.get(line) ?? 0) + 1);
          perBackend[reply.address] = (perBackend[reply.address] ?? 0) + 1;
        } catch (error) {
          const key = error instanceof Error ? error.message : String(error);
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    elapsedMs = Math.round(performance.now() - started);
  } finally {
    client.close();
    await backends.stopAll();
  }

  // The seed article's `sort | uniq -c | sort -nrk1`.
  console.log(`\n${calls} calls, ${concurrency} at a time, ${elapsedMs} ms:`);
  for (const [line, count] of [...lines].sort((a, b) => b[1] - a[1])) {
    console.log(`${String(count).padStart(7)} ${line}`);
  }
  let errorCount = 0;
  for (const [message, count] of errors) {
    errorCount += count;
    console.log(`${String(count).padStart(7)} ERROR ${message}`);
  }
  console.log(
    JSON.stringify({ example: 'hello', calls, errors: errorCount, perBackend, elapsedMs }),
  );
  return errorCount === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
