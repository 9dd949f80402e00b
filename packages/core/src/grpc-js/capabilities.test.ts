import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { UnsupportedGrpcJsError } from '../errors';
import { register } from '../register';
import { GRPC_CAPABILITIES, missingCapabilities } from './capabilities';

/** A copy of the grpc-js module object without the value at `dotted` (a fresh object at each level). */
function without(dotted: string): typeof grpc {
  const parts = dotted.split('.');
  const copy: Record<string, unknown> = { ...grpc, experimental: { ...grpc.experimental } };
  let at = copy;
  for (const part of parts.slice(0, -1)) {
    const next = { ...(at[part] as Record<string, unknown>) };
    at[part] = next;
    at = next;
  }
  delete at[parts[parts.length - 1]!];
  return copy as unknown as typeof grpc;
}

/** Every use of the grpc-js module in the compiled core (not tests): `experimental.trace`, `status`, … */
function usesInCompiledCore(): Map<string, Set<string>> {
  const root = path.resolve(__dirname, '..');
  const files = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return entry.name === 'testing' ? [] : files(full);
      return entry.name.endsWith('.js') && !entry.name.endsWith('.test.js') ? [full] : [];
    });
  const uses = new Map<string, Set<string>>();
  const add = (name: string, file: string) => {
    const set = uses.get(name) ?? new Set<string>();
    set.add(path.relative(root, file));
    uses.set(name, set);
  };
  for (const file of files(root)) {
    const code = fs
      .readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const m of code.matchAll(
      /const \{([^}]*)\} = (?:this\.)?(?:rt\.)?grpc(\.experimental)?;/g,
    )) {
      for (const part of m[1]!.split(',')) {
        const name = part.split(':')[0]!.trim();
        if (name) add(m[2] ? `experimental.${name}` : name, file);
      }
    }
    for (const m of code.matchAll(
      /(?<![\w.'"`/])(?:(?:this\.)?rt\.)?grpc\.(experimental\.)?([A-Za-z_$][\w$]*)(?:\.([A-Za-z_$][\w$]*))?/g,
    )) {
      const [, inExperimental, name, member] = m;
      if (inExperimental) add(`experimental.${name}`, file);
      else if (name === 'credentials' && member) add(`credentials.${member}`, file);
      else if (name !== 'default') add(name!, file);
    }
    for (const m of code.matchAll(/(?<![\w.$'"`])experimental\.([A-Za-z_$][\w$]*)/g)) {
      add(`experimental.${m[1]}`, file);
    }
  }
  return uses;
}

describe('grpc-js capabilities', () => {
  test('the grpc-js this package is built against has every one', () => {
    assert.deepEqual(missingCapabilities(grpc), []);
  });

  for (const capability of Object.keys(GRPC_CAPABILITIES)) {
    test(`register() refuses a module copy without ${capability}, naming it, before registering anything`, () => {
      const copy = without(capability);
      const registered: string[] = [];
      const experimental = copy.experimental as Record<string, unknown> | undefined;
      if (experimental && typeof experimental['registerLoadBalancerType'] === 'function') {
        experimental['registerLoadBalancerType'] = (name: string) => registered.push(name);
      }
      if (experimental && typeof experimental['registerResolver'] === 'function') {
        experimental['registerResolver'] = (scheme: string) => registered.push(scheme);
      }
      assert.throws(
        () => register({ grpc: copy }),
        (e: unknown) =>
          e instanceof UnsupportedGrpcJsError &&
          e.code === 'UNSUPPORTED_GRPC_JS' &&
          e.missing.includes(capability) &&
          e.message.includes(capability),
      );
      assert.deepEqual(registered, []);
    });
  }

  test('a value of the wrong kind counts as missing', () => {
    const copy = { ...grpc, experimental: { ...grpc.experimental, statusOrFromValue: {} } };
    assert.deepEqual(missingCapabilities(copy), ['experimental.statusOrFromValue']);
    assert.deepEqual(missingCapabilities(undefined).length, Object.keys(GRPC_CAPABILITIES).length);
  });

  test('lists exactly what the compiled core uses of the module', () => {
    const uses = usesInCompiledCore();
    const listed = new Set(Object.keys(GRPC_CAPABILITIES));
    for (const [name, files] of uses) {
      assert.ok(
        listed.has(name),
        `core uses grpc ${name} (${[...files].join(', ')}) but register() does not check it: add it to GRPC_CAPABILITIES`,
      );
    }
    for (const name of listed) {
      assert.ok(
        uses.has(name) || [...uses.keys()].some((used) => used.startsWith(`${name}.`)),
        `GRPC_CAPABILITIES lists ${name}, which core no longer uses`,
      );
    }
  });
});
