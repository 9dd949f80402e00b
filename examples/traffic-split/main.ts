/**
 * Traffic split by method, as the seed article does with an Istio VirtualService and
 * DestinationRule subsets — here in the client, with no proxy: three backends labelled
 * version=v1/v2/v3 (Hello / Bonjour / Hola); SayHello goes 30% / 60% / 10% to v1 / v2 / v3,
 * SayGoodbye 100% to v2. 10,000 calls (every fifth a SayGoodbye).
 *
 *   npm run example -- traffic-split [--calls N]
 */
import * as grpc from '@grpc/grpc-js';
import { register, serviceConfig, trafficSplit } from '@grpc-lb/core';
import { loadGreeterService, sayGoodbye, sayHello, startBackends } from '@grpc-lb/test/harness';
import { drive, intFlag, run, Tally } from '../shared/cli';

const SAY_HELLO = '/grpclb.test.Greeter/SayHello';
const SAY_GOODBYE = '/grpclb.test.Greeter/SayGoodbye';

run(async () => {
  const calls = intFlag('calls', 10_000);
  const concurrency = intFlag('concurrency', 20);
  register({ grpc });

  const backends = await startBackends({
    count: 3,
    greetings: ['Hello', 'Bonjour', 'Hola'],
    labels: [{ version: 'v1' }, { version: 'v2' }, { version: 'v3' }],
  });
  // Each endpoint carries its labels in the target; a registry (etcd, Consul, Kubernetes) would supply them.
  const target = `static:///${backends.backends.map((b) => `${b.address};version=${b.labels['version']}`).join(',')}`;
  const config = serviceConfig(
    trafficSplit()
      .subset('v1', { version: 'v1' })
      .subset('v2', { version: 'v2' })
      .subset('v3', { version: 'v3' })
      .route({ method: SAY_HELLO }, { v1: 30, v2: 60, v3: 10 }, { name: 'say-hello-canary' })
      .route({ method: SAY_GOODBYE }, { v2: 100 }, { name: 'say-goodbye-v2' }),
  );
  console.log(`client target ${target}`);
  console.log(`service config ${JSON.stringify(config)}`);

  const Greeter = loadGreeterService();
  const client = new Greeter(target, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(config),
  });
  const perMethod: Record<string, Record<string, number>> = { [SAY_HELLO]: {}, [SAY_GOODBYE]: {} };
  const lines = new Tally();
  const errors = new Tally();
  try {
    await drive(
      calls,
      concurrency,
      async (n) => {
        const method = n % 5 === 4 ? SAY_GOODBYE : SAY_HELLO;
        const reply = await (method === SAY_HELLO ? sayHello : sayGoodbye)(client, 'eric');
        const version = reply.labels['version'] ?? '?';
        const counts = perMethod[method]!;
        counts[version] = (counts[version] ?? 0) + 1;
        lines.add(`${reply.message}(${reply.address}) ${version}`);
      },
      errors,
    );
  } finally {
    client.close();
    await backends.stopAll();
  }

  console.log(`\n${calls} calls:`);
  lines.print();
  errors.print('ERROR ');
  const shares: Record<string, Record<string, number>> = {};
  for (const [method, counts] of Object.entries(perMethod)) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    shares[method] = Object.fromEntries(
      Object.entries(counts)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([version, count]) => [version, Math.round((count / total) * 10_000) / 10_000]),
    );
  }
  const expected = { [SAY_HELLO]: { v1: 0.3, v2: 0.6, v3: 0.1 }, [SAY_GOODBYE]: { v2: 1 } };
  console.log(
    JSON.stringify({ example: 'traffic-split', calls, errors: errors.total, shares, expected }),
  );
  return errors.total === 0 ? 0 : 1;
});
