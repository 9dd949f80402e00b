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
import { drive, intFlag, run, Tally } from '../shared/cli';

run(async () => {
  const calls = intFlag('calls', 10_000);
  const concurrency = intFlag('concurrency', 50);

  register({ grpc });
  const backends = await startBackends({ count: 3, greetings: ['Hello', 'Bonjour', 'Hola'] });
  const target = `static:///${backends.addresses.join(',')}`;
  console.log(`3 backends up; client target ${target}`);

  const Greeter = loadGreeterService();
  const client = new Greeter(target, grpc.credentials.createInsecure());
  const lines = new Tally();
  const errors = new Tally();
  const perBackend: Record<string, number> = Object.fromEntries(
    backends.addresses.map((a) => [a, 0]),
  );
  const started = performance.now();
  let elapsedMs = 0;
  try {
    await drive(
      calls,
      concurrency,
      async () => {
        const reply = await sayHello(client, 'grpc-lb');
        lines.add(`${reply.message}(${reply.address})`);
        perBackend[reply.address] = (perBackend[reply.address] ?? 0) + 1;
      },
      errors,
    );
    elapsedMs = Math.round(performance.now() - started);
  } finally {
    client.close();
    await backends.stopAll();
  }

  console.log(`\n${calls} calls, ${concurrency} at a time, ${elapsedMs} ms:`);
  lines.print();
  errors.print('ERROR ');
  console.log(
    JSON.stringify({ example: 'hello', calls, errors: errors.total, perBackend, elapsedMs }),
  );
  return errors.total === 0 ? 0 : 1;
});
