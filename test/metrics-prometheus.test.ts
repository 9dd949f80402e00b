/**
 * OpenTelemetry metrics end to end: register({ metrics }) with the SDK's
 * Prometheus exporter, calls through grpc-lb.round_robin to real grpc-js
 * backends (child processes on 127.0.0.x), and the exposition scraped over
 * HTTP as Prometheus would.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ManualEndpoints, register } from '@grpc-lb/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { GREETER_SERVICE, loadGreeterService, sayHello, startBackends } from './harness';

const SAY_HELLO = `/${GREETER_SERVICE}/SayHello`;

/** Serves the exporter's exposition on a free loopback port; returns a scrape function and a closer. */
async function serve(
  exporter: PrometheusExporter,
): Promise<{ scrape: () => Promise<string>; close: () => Promise<void> }> {
  const server = http.createServer((request, response) =>
    exporter.getMetricsRequestHandler(request, response),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    scrape: async () => {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(response.status, 200);
      return response.text();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The value of the sample `name{…}` whose labels include every one of `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) {
      return Number(
        line
          .slice(close + 1)
          .trim()
          .split(' ')[0],
      );
    }
  }
  return undefined;
}

test('calls, connections, resolver updates and endpoints reach a Prometheus scrape', async () => {
  const set = await startBackends({ count: 2 });
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const http = await serve(exporter);
  register({ grpc, metrics: { meterProvider: provider } });
  const backends = new ManualEndpoints(
    set.backends.map((b) => ({ host: b.host, port: b.port })),
    { id: 'metrics-prometheus' },
  );
  const Greeter = loadGreeterService();
  const client = new Greeter(backends.target, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ 'grpc-lb.round_robin': {} }] }),
  });
  const leastBackends = new ManualEndpoints(
    set.backends.map((b) => ({ host: b.host, port: b.port })),
    { id: 'metrics-prometheus-lr' },
  );
  const leastClient = new Greeter(leastBackends.target, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify({
      loadBalancingConfig: [{ 'grpc-lb.least_request': {} }],
    }),
  });
  try {
    for (let i = 0; i < 10; i++) await sayHello(client, 'metrics');
    for (let i = 0; i < 4; i++) await sayHello(leastClient, 'metrics');
    const text = await http.scrape();
    const target = { grpc_target: backends.target };
    const call = { ...target, grpc_method: SAY_HELLO };
    assert.equal(sample(text, 'grpc_client_attempt_started_total', call), 10, text);
    assert.equal(
      sample(text, 'grpc_client_attempt_duration_count', { ...call, grpc_status: 'OK' }),
      10,
      text,
    );
    assert.equal(
      sample(text, 'grpc_subchannel_connection_attempts_succeeded_total', target),
      2,
      text,
    );
    assert.equal(sample(text, 'grpc_subchannel_open_connections', target), 2, text);
    assert.equal(sample(text, 'grpc_lb_resolver_updates_total', target), 1, text);
    assert.equal(
      sample(text, 'grpc_lb_endpoints', { ...target, grpc_lb_endpoint_state: 'ready' }),
      2,
      text,
    );
    assert.equal(
      sample(text, 'grpc_client_attempt_duration_bucket', {
        ...call,
        grpc_status: 'OK',
        le: '100',
      }),
      10,
      "A66's last bucket boundary",
    );
    assert.equal(sample(text, 'grpc_lb_resolver_staleness', target), 0, text);
    assert.equal(sample(text, 'grpc_lb_slow_start_endpoints', target), 0, text);
    const picks = ['cheaper', 'tie', 'only'].map(
      (choice) =>
        sample(text, 'grpc_lb_least_request_picks_total', {
          grpc_target: leastBackends.target,
          grpc_lb_least_request_choice: choice,
        }) ?? 0,
    );
    assert.equal(
      picks.reduce((a, b) => a + b, 0),
      4,
      text,
    );
    assert.match(text, /otel_scope_name="@grpc-lb\/core"/);
    for (const backend of set.backends) {
      assert.ok(!text.includes(`${backend.host}:${backend.port}`), 'no endpoint address');
    }
  } finally {
    client.close();
    leastClient.close();
    register({ grpc, metrics: false });
    await http.close();
    await provider.shutdown();
    await set.stopAll();
  }
});
