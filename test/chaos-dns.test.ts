/**
 * Chaos, DNS: steady load on a `dns+lb://127.0.0.1:<port>/chaos.test:<port>` target whose DNS
 * server (test/support/lying-dns.ts) lies in turn in every way it knows — a wrong id, a wrong
 * question, "truncated" with a TCP side that never answers, 10,000 records claimed, a compression
 * loop, SERVFAIL, silence — with a truthful answer, each time a different set, after each lie.
 * Through every lie the calls keep succeeding on the last good set, the resolver does not spin
 * (queries per second and this process's CPU time over the lie are bounded), and once the server
 * tells the truth again the client follows it: an added backend gets calls, a removed one stops.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { registerDns } from '@grpc-lb/resolver-dns';
import { type GreeterClient, loadGreeterService, startBackends, waitFor } from './harness';
import { LIES, startLyingDns } from './support/lying-dns';
import { startLoad, waitUntilQuiet } from './support/load';

const warnings: string[] = [];
registerDns({ grpc, logger: { warn: (message) => warnings.push(message) } });
const Greeter = loadGreeterService();

const LIE_MS = 2_500;
const FOLLOW_LIMIT_MS = 5_000;
/** Of one core, over a lie: a sanity bound against a hot loop, not a benchmark. */
const CPU_LIMIT = 0.3;
/** Lookups are at least `min_interval` (100 ms) apart, two queries (A, AAAA) each, plus TCP. */
const QUERIES_PER_SECOND_LIMIT = 30;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function cpuShare(since: NodeJS.CpuUsage, elapsedMs: number): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000 / elapsedMs;
}

describe('chaos: a DNS server that lies, under steady load', () => {
  test('every lie keeps the last good set with 0 failed calls and no hot loop; each truth after it is followed within 5 s', async (t) => {
    const backends = await startBackends({ count: 3 });
    const [b1, b2, b3] = backends.backends;
    assert.ok(b1 && b2 && b3);
    const dns = await startLyingDns([b1.host, b2.host]);
    let greeter: GreeterClient | undefined;
    try {
      greeter = new Greeter(
        `dns+lb://127.0.0.1:${dns.port}/chaos.test:${backends.port}?interval=200ms&min_interval=100ms&timeout=300ms&attempts=1`,
        grpc.credentials.createInsecure(),
        { 'grpc.use_local_subchannel_pool': 1 },
      );
      const load = startLoad(greeter, { concurrency: 2, deadlineMs: 5_000, pauseMs: 20 });
      try {
        await waitFor(() => [b1, b2].every((b) => load.result.perBackend.has(b.address)), {
          timeoutMs: 10_000,
          message: 'b1 and b2 take calls',
        });
        const baselineCpu = process.cpuUsage();
        const baselineStart = performance.now();
        await sleep(LIE_MS);
        const truthfulCpu = cpuShare(baselineCpu, performance.now() - baselineStart);

        const figures: Record<string, unknown>[] = [];
        let withB3 = false;
        for (const lie of LIES) {
          const okBefore = load.result.ok;
          const failedBefore = load.result.errors.length;
          const queriesBefore = dns.queries.udp + dns.queries.tcp;
          const tcpBefore = dns.queries.tcp;
          const warningsBefore = warnings.length;
          const cpuBefore = process.cpuUsage();
          const lieStart = performance.now();
          dns.lie = lie;
          await sleep(LIE_MS);
          const lieMs = performance.now() - lieStart;
          const cpu = cpuShare(cpuBefore, lieMs);
          const queries = dns.queries.udp + dns.queries.tcp - queriesBefore;
          const tcpQueries = dns.queries.tcp - tcpBefore;
          const failedDuringLie = load.result.errors.length - failedBefore;
          const callsDuringLie = load.result.ok - okBefore;
          const warned = warnings.slice(warningsBefore);

          withB3 = !withB3;
          const b3CallsBefore = load.result.perBackend.get(b3.address) ?? 0;
          const truthAt = performance.now();
          dns.truth(withB3 ? [b1.host, b2.host, b3.host] : [b1.host, b2.host]);
          let followedMs: number;
          if (withB3) {
            await waitFor(() => (load.result.perBackend.get(b3.address) ?? 0) > b3CallsBefore, {
              timeoutMs: 15_000,
              intervalMs: 5,
              message: `b3, added once the server stops lying (${lie}), takes calls`,
            });
            followedMs = performance.now() - truthAt;
          } else {
            const lastCall = await waitUntilQuiet(load, b3.address, {
              quietMs: 1_000,
              timeoutMs: 15_000,
              message: `b3, removed once the server stops lying (${lie}), stops taking calls`,
            });
            followedMs = Math.max(0, lastCall - truthAt);
          }
          const entry = {
            lie,
            lieMs: Math.round(lieMs),
            queries,
            tcpQueries,
            cpu: Number(cpu.toFixed(3)),
            callsDuringLie,
            failedDuringLie,
            truthful: withB3 ? 'b3 added' : 'b3 removed',
            followedMs: Math.round(followedMs),
            warning: warned[0]?.slice(-160),
          };
          figures.push(entry);
          t.diagnostic(JSON.stringify(entry));
          assert.equal(failedDuringLie, 0, `${lie}: ${load.result.errors.at(-1)?.message ?? ''}`);
          assert.ok(callsDuringLie > 0, `${lie}: calls went on`);
          assert.ok(warned.length > 0, `${lie}: the resolver reported the failed lookups`);
          assert.ok(queries >= 1, `${lie}: the server was asked during the lie`);
          assert.ok(
            queries / (lieMs / 1000) <= QUERIES_PER_SECOND_LIMIT,
            `${lie}: ${queries} queries in ${Math.round(lieMs)} ms`,
          );
          assert.ok(cpu < CPU_LIMIT, `${lie}: ${(cpu * 100).toFixed(1)}% of a core`);
          assert.ok(
            followedMs <= FOLLOW_LIMIT_MS,
            `${lie}: truth followed in ${Math.round(followedMs)} ms`,
          );
        }
        const result = await load.stop();
        t.diagnostic(
          JSON.stringify({
            resolver: 'dns',
            calls: result.ok,
            failed: result.errors.length,
            truthfulCpu: Number(truthfulCpu.toFixed(3)),
            maxLieCpu: Math.max(...figures.map((f) => f['cpu'] as number)),
            maxFollowedMs: Math.max(...figures.map((f) => f['followedMs'] as number)),
            warnings: warnings.length,
          }),
        );
        assert.deepEqual(
          result.errors.map((e) => `${e.code}: ${e.details}`),
          [],
          'no call fails through the lies',
        );
      } finally {
        await load.stop();
      }
    } finally {
      greeter?.close();
      await dns.close();
      await backends.stopAll();
    }
  });
});
