import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeXml, renderChart } from './chart';
import { chartInput } from './summary';
import { fakeBenchRun } from './testing';

describe('renderChart', () => {
  const svg = renderChart(chartInput(fakeBenchRun()));

  test('is one standalone SVG document with the three panels', () => {
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.includes('Throughput, median requests/s'));
    assert.ok(svg.includes('p99 latency, median ms'));
    assert.ok(svg.includes('Evenness per client, max/min calls per backend'));
  });

  test('draws a bar per scenario, the fastest one full width', () => {
    assert.ok(svg.includes('>3100 rps<'));
    assert.ok(svg.includes('>grpc-lb-round_robin<'));
    const widths = [...svg.matchAll(/<rect x="230" y="\d+" width="([\d.]+)"/g)].map((m) =>
      Number(m[1]),
    );
    assert.equal(Math.max(...widths), 960 - 230 - 150 - 20);
  });

  test('hatches an infinite max/min and says how many backends were idle', () => {
    assert.ok(svg.includes('fill="url(#hatch)"'));
    assert.ok(svg.includes('∞ (2 idle)'));
  });

  test('escapes text', () => {
    assert.equal(escapeXml('a<b & "c">'), 'a&lt;b &amp; &quot;c&quot;&gt;');
    const named = renderChart({
      title: '<x>',
      subtitle: '',
      rows: [{ name: 'a&b', rps: 1, p99Ms: 1 }],
    });
    assert.ok(named.includes('&lt;x&gt;'));
    assert.ok(named.includes('>a&amp;b<'));
  });
});
