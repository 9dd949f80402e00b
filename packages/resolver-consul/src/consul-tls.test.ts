/**
 * TLS and token settings: the options and Consul's environment variables, a token file read again
 * before each request, and requests to a local HTTPS server that requires a client certificate
 * (certificates made with openssl for the test). test/consul-agent-tls.test.ts runs the same
 * against a real agent with verify_incoming and ACLs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ConfigError, parseTargetUri, type ResolutionSink } from '@grpc-lb/core';
import {
  agentRequest,
  createPool,
  currentToken,
  describeRequestError,
  resolveAgentSettings,
} from './consul-agent';
import { ConsulEndpointResolver } from './consul-resolver';
import { parseConsulTarget } from './consul-target';

const dir = mkdtempSync(join(tmpdir(), 'grpc-lb-consul-tls-'));
const file = (name: string): string => join(dir, name);
const emptyDir = (name: string): string => {
  mkdirSync(file(name), { recursive: true });
  return file(name);
};

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A CA and a server (127.0.0.1) and client certificate it signs; an unrelated CA too. */
function makeCerts(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file(`${ca}.key`),
      '-out',
      file(`${ca}.crt`),
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ]);
  }
  for (const [name, ext] of [
    ['server', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    writeFileSync(file(`${name}.ext`), ext);
    openssl([
      'req',
      ...ec,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=${name}`,
    ]);
    openssl([
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file(`${name}.crt`),
      '-days',
      '1',
      '-extfile',
      file(`${name}.ext`),
    ]);
  }
}

interface Seen {
  token: string | undefined;
  clientCn: string | undefined;
}

let server: https.Server;
let address = '';
const seen: Seen[] = [];
/** The tokens the fake agent accepts; any other gets a 403. */
const accepted = new Set<string>();

before(async () => {
  makeCerts();
  server = https.createServer(
    {
      key: readFileSync(file('server.key')),
      cert: readFileSync(file('server.crt')),
      ca: readFileSync(file('ca.crt')),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const token = req.headers['x-consul-token'];
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({
        token: typeof token === 'string' ? token : undefined,
        clientCn: typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined,
      });
      if (typeof token !== 'string' || !accepted.has(token)) {
        res.writeHead(403).end('Permission denied: token not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '7' });
      res.end(
        JSON.stringify([
          {
            Node: { Node: 'n', Address: '10.9.9.9' },
            Service: { ID: 'a', Address: '10.0.0.1', Port: 50051 },
            Checks: [{ Status: 'passing' }],
          },
        ]),
      );
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

async function get(settings: ReturnType<typeof resolveAgentSettings>) {
  const pool = createPool(settings);
  try {
    return await agentRequest(settings, pool, 'GET', '/v1/agent/self', { timeoutMs: 5_000 });
  } finally {
    pool.destroy();
  }
}

describe('TLS and token settings', () => {
  test('CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY and a token file: the request is made with the client certificate and the token', async () => {
    writeFileSync(file('token'), 'token-one\n');
    accepted.add('token-one');
    const settings = resolveAgentSettings(
      undefined,
      { address },
      {
        CONSUL_CACERT: file('ca.crt'),
        CONSUL_CLIENT_CERT: file('client.crt'),
        CONSUL_CLIENT_KEY: file('client.key'),
        CONSUL_HTTP_TOKEN_FILE: file('token'),
      },
    );
    assert.equal(settings.tokenSource, 'CONSUL_HTTP_TOKEN_FILE');
    const response = await get(settings);
    assert.equal(response.status, 200);
    assert.deepEqual(seen.at(-1), { token: 'token-one', clientCn: 'client' });
  });

  test('CONSUL_CAPATH: every PEM certificate in the directory is trusted; CONSUL_CACERT wins over it', async () => {
    const capath = file('capath');
    mkdirSync(join(capath, 'nested'), { recursive: true });
    writeFileSync(join(capath, '1-other.pem'), readFileSync(file('other-ca.crt')));
    writeFileSync(join(capath, '2-ours.crt'), readFileSync(file('ca.crt')));
    writeFileSync(join(capath, 'README'), 'not a certificate\n');
    writeFileSync(join(capath, 'nested', 'ignored.pem'), 'garbage');
    accepted.add('capath');
    const client = {
      CONSUL_CLIENT_CERT: file('client.crt'),
      CONSUL_CLIENT_KEY: file('client.key'),
    };
    const settings = resolveAgentSettings(
      undefined,
      { address, token: 'capath' },
      { ...client, CONSUL_CAPATH: capath },
    );
    assert.equal((await get(settings)).status, 200);
    assert.equal(
      (
        await get(
          resolveAgentSettings(undefined, { address, token: 'capath', caPath: capath }, client),
        )
      ).status,
      200,
    );
    // The consul CLI's precedence: CONSUL_CACERT (here a CA that did not sign the agent) wins.
    const cacertFirst = resolveAgentSettings(
      undefined,
      { address, token: 'capath' },
      { ...client, CONSUL_CAPATH: capath, CONSUL_CACERT: file('other-ca.crt') },
    );
    await assert.rejects(get(cacertFirst));
    // Only the unrelated CA in the directory: not trusted.
    const otherOnly = file('capath-other');
    mkdirSync(otherOnly, { recursive: true });
    writeFileSync(join(otherOnly, 'ca.pem'), readFileSync(file('other-ca.crt')));
    await assert.rejects(
      get(
        resolveAgentSettings(
          undefined,
          { address, token: 'capath' },
          { ...client, CONSUL_CAPATH: otherOnly },
        ),
      ),
    );
  });

  test('the ca/cert/key options take PEM text or a path', async () => {
    accepted.add('opt');
    const settings = resolveAgentSettings(
      undefined,
      {
        address,
        token: 'opt',
        ca: readFileSync(file('ca.crt'), 'utf8'),
        cert: file('client.crt'),
        key: readFileSync(file('client.key')),
      },
      {},
    );
    assert.equal((await get(settings)).status, 200);
  });

  test('the token file is read again before each request: a rotated token is used at once', async () => {
    writeFileSync(file('rotating'), 'old-token');
    accepted.add('old-token');
    const settings = resolveAgentSettings(
      undefined,
      {
        address,
        ca: file('ca.crt'),
        cert: file('client.crt'),
        key: file('client.key'),
        tokenFile: file('rotating'),
      },
      {},
    );
    assert.equal((await get(settings)).status, 200);
    accepted.delete('old-token');
    assert.equal((await get(settings)).status, 403, 'the old token is revoked');
    writeFileSync(file('rotating'), 'new-token\n');
    accepted.add('new-token');
    assert.equal((await get(settings)).status, 200);
    assert.equal(seen.at(-1)!.token, 'new-token');
    writeFileSync(file('rotating'), '');
    assert.equal(await currentToken(settings), undefined, 'an empty file: no token');
  });

  test('a resolver with a rotated token file recovers on the next query after a 403, naming the file, never the token', async () => {
    writeFileSync(file('resolver-token'), 'revoked-secret-token');
    const settings = resolveAgentSettings(
      undefined,
      {
        address,
        ca: file('ca.crt'),
        cert: file('client.crt'),
        key: file('client.key'),
        tokenFile: file('resolver-token'),
      },
      {},
    );
    const target = 'consul:///hello';
    const resolver = new ConsulEndpointResolver(
      parseConsulTarget(parseTargetUri(target), target),
      settings,
    );
    const errors: Error[] = [];
    const updates: number[] = [];
    const sink: ResolutionSink = {
      update: (u) => updates.push(u.endpoints.length),
      error: (e) => errors.push(e),
      warn: () => {},
    };
    resolver.start(sink);
    try {
      await until(() => errors.length === 1);
      assert.match(
        errors[0]!.message,
        /403 .*the ACL token \(from the file .*resolver-token \(the `tokenFile` option\)\) lacks service:read/,
      );
      assert.doesNotMatch(errors[0]!.message, /revoked-secret/);
      writeFileSync(file('resolver-token'), 'fresh-token');
      accepted.add('fresh-token');
      resolver.refresh();
      // (The fake agent answers every query at once; the loop goes on, rate-limited.)
      await until(() => updates.length >= 1);
      assert.equal(updates[0], 1);
    } finally {
      resolver.stop();
    }
  });

  test('no client certificate, or an untrusted agent: one sentence saying what to give', async () => {
    const noClient = resolveAgentSettings(undefined, { address, ca: file('ca.crt') }, {});
    await assert.rejects(get(noClient), (error: Error) => {
      assert.ok(error instanceof Error);
      return true;
    });
    const target = 'consul:///hello';
    for (const [settings, expected] of [
      [
        noClient,
        /^querying .*: TLS handshake failed: tlsv13 alert certificate required: the agent requires a client certificate \(verify_incoming\): give the `cert` and `key` options or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY$/,
      ],
      [
        resolveAgentSettings(
          undefined,
          { address, ca: file('other-ca.crt'), cert: file('client.crt'), key: file('client.key') },
          {},
        ),
        /the agent's certificate is not trusted \(give its CA with the `ca` option, CONSUL_CACERT or CONSUL_CAPATH\)/,
      ],
    ] as const) {
      const resolver = new ConsulEndpointResolver(
        parseConsulTarget(parseTargetUri(target), target),
        settings,
      );
      const errors: Error[] = [];
      resolver.start({ update: () => {}, error: (e) => errors.push(e), warn: () => {} });
      try {
        await until(() => errors.length === 1);
        assert.match(errors[0]!.message, expected);
      } finally {
        resolver.stop();
      }
    }
  });

  test('CONSUL_HTTP_SSL_VERIFY=false switches the check off; CONSUL_TLS_SERVER_NAME sets the name', () => {
    const settings = resolveAgentSettings(
      undefined,
      {},
      {
        CONSUL_HTTP_ADDR: 'https://127.0.0.1:8501',
        CONSUL_HTTP_SSL_VERIFY: 'false',
        CONSUL_TLS_SERVER_NAME: 'consul.local',
      },
    );
    assert.equal(settings.tls?.rejectUnauthorized, false);
    assert.equal(settings.tls?.servername, 'consul.local');
    const strict = resolveAgentSettings(undefined, {}, { CONSUL_HTTP_ADDR: 'https://h:8501' });
    assert.equal(strict.tls?.rejectUnauthorized, true);
  });

  test('token precedence: token option, tokenFile option, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN', () => {
    const env = { CONSUL_HTTP_TOKEN: 't-env', CONSUL_HTTP_TOKEN_FILE: '/f-env' };
    const source = (options: object, e: object = env) =>
      resolveAgentSettings(undefined, options, e as NodeJS.ProcessEnv).tokenSource;
    assert.equal(source({ token: 'x', tokenFile: '/f' }), 'option');
    assert.equal(source({ tokenFile: '/f' }), 'tokenFile');
    assert.equal(source({}), 'CONSUL_HTTP_TOKEN_FILE');
    assert.equal(source({}, { CONSUL_HTTP_TOKEN: 't' }), 'CONSUL_HTTP_TOKEN');
  });

  test('an unreadable token file fails the request naming the file, not a token', async () => {
    const settings = resolveAgentSettings(undefined, { tokenFile: file('missing') }, {});
    await assert.rejects(
      currentToken(settings),
      /cannot read the ACL token from the file .*missing \(the `tokenFile` option\) \(ENOENT\)/,
    );
  });

  test('bad TLS settings are ConfigErrors naming the field, never the value', () => {
    const table: [object, NodeJS.ProcessEnv, RegExp][] = [
      [
        { address: 'http://127.0.0.1:8500', ca: file('ca.crt') },
        {},
        /invalid ca: the agent http:\/\/127\.0\.0\.1:8500 is plain HTTP: give it as https:\/\//,
      ],
      [
        { address, cert: file('client.crt') },
        {},
        /invalid key: a client certificate needs its key/,
      ],
      [
        { address },
        { CONSUL_CACERT: file('nope.crt') },
        /invalid CONSUL_CACERT: cannot read the file ".*nope\.crt" \(ENOENT\)/,
      ],
      [
        { address },
        { CONSUL_CAPATH: file('no-such-dir') },
        /invalid CONSUL_CAPATH: cannot read the directory ".*no-such-dir" \(ENOENT\)/,
      ],
      [
        { address, caPath: emptyDir('empty-capath') },
        {},
        /invalid caPath: the directory ".*empty-capath" holds no PEM certificate/,
      ],
      [
        { address: 'http://127.0.0.1:8500', caPath: dir },
        {},
        /invalid caPath: the agent http:\/\/127\.0\.0\.1:8500 is plain HTTP/,
      ],
      [
        { address, key: 'not-a-key-SECRETVALUE', cert: file('client.crt') },
        {},
        /invalid key: is neither PEM text nor the path of a readable file/,
      ],
    ];
    for (const [options, env, expected] of table) {
      assert.throws(
        () => resolveAgentSettings(undefined, options, env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(options));
          assert.match(error.message, expected);
          assert.doesNotMatch(error.message, /SECRETVALUE/);
          return true;
        },
      );
    }
  });
});

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('describeRequestError: what each failure says', () => {
  const https = resolveAgentSettings(undefined, { address: 'https://127.0.0.1:8501' }, {});
  const withCert = {
    ...https,
    tls: { ...https.tls!, cert: Buffer.from('x'), key: Buffer.from('y') },
  };
  const http = resolveAgentSettings(undefined, { address: '127.0.0.1:8500' }, {});
  const error = (message: string, code?: string) => Object.assign(new Error(message), { code });
  const table: [Error, typeof https, RegExp][] = [
    [
      error('connect ECONNREFUSED', 'ECONNREFUSED'),
      http,
      /^connection refused \(is the agent running\?\)$/,
    ],
    [
      error('socket hang up', 'ECONNRESET'),
      https,
      /^socket hang up \(if the agent requires client certificates/,
    ],
    [error('socket hang up', 'ECONNRESET'), withCert, /^socket hang up$/],
    [
      error(
        '1:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../x.c:1:\n',
        'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
      ),
      withCert,
      /^TLS handshake failed: sslv3 alert bad certificate: the agent refused the client certificate/,
    ],
    [
      error('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'),
      https,
      /not trusted \(give its CA with the `ca` option, CONSUL_CACERT or CONSUL_CAPATH\)$/,
    ],
    [
      error("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'),
      https,
      /tlsServerName/,
    ],
    [
      error('Parse Error: Expected HTTP/', 'HPE_INVALID_CONSTANT'),
      http,
      /is the agent's port https\?/,
    ],
  ];
  for (const [e, settings, expected] of table) {
    assert.match(describeRequestError(e, settings), expected);
  }
});
