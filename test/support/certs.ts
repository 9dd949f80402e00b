/**
 * Test certificates made with openssl: a CA, then server and client certificates it signs (SANs,
 * extended key usage, organizations — Kubernetes reads a client certificate's O= as its groups),
 * and RSA key pairs (Kubernetes service-account signing keys). Valid for two days.
 *
 *   const ca = await createCa(dir, 'grpc-lb test CA');
 *   const server = await ca.issue('server', { cn: '127.0.0.1', sans: ['IP:127.0.0.1'], usage: 'serverAuth' });
 *   const admin = await ca.issue('admin', { cn: 'admin', organizations: ['system:masters'], usage: 'clientAuth' });
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './server-process';

export interface CertPair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface IssueOptions {
  readonly cn: string;
  /** O= entries (a Kubernetes client certificate's groups). */
  readonly organizations?: readonly string[];
  /** subjectAltName entries, e.g. `IP:127.0.0.1`, `DNS:localhost`. */
  readonly sans?: readonly string[];
  readonly usage: 'serverAuth' | 'clientAuth' | 'serverAuth,clientAuth';
}

export interface Ca extends CertPair {
  /** Issues `<name>.crt` / `<name>.key` in the CA's dir. */
  issue(name: string, options: IssueOptions): Promise<CertPair>;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A subject for `openssl -subj`, with `/` `,` `+` `=` escaped. */
function subject(cn: string, organizations: readonly string[] = []): string {
  const escape = (value: string): string => value.replace(/[/,+=\\]/g, (c) => `\\${c}`);
  return `${organizations.map((o) => `/O=${escape(o)}`).join('')}/CN=${escape(cn)}`;
}

export async function createCa(dir: string, cn: string): Promise<Ca> {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  await run('openssl', [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    subject(cn),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return {
    certFile,
    keyFile,
    async issue(name: string, options: IssueOptions): Promise<CertPair> {
      const file = (ext: string): string => join(dir, `${name}.${ext}`);
      const ext = [`extendedKeyUsage=${options.usage}`, 'keyUsage=critical,digitalSignature'];
      if (options.sans && options.sans.length > 0) {
        ext.push(`subjectAltName=${options.sans.join(',')}`);
      }
      writeFileSync(file('ext'), `${ext.join('\n')}\n`);
      await run('openssl', [
        'req',
        ...EC_KEY,
        '-keyout',
        file('key'),
        '-out',
        file('csr'),
        '-subj',
        subject(options.cn, options.organizations),
      ]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        file('csr'),
        '-CA',
        certFile,
        '-CAkey',
        keyFile,
        '-CAcreateserial',
        '-out',
        file('crt'),
        '-days',
        '2',
        '-extfile',
        file('ext'),
      ]);
      return { certFile: file('crt'), keyFile: file('key') };
    },
  };
}

/** An RSA-2048 key pair as PEM files `<name>.key` (PKCS#8) and `<name>.pub` (SPKI). */
export function rsaKeyPair(
  dir: string,
  name: string,
): { privateKeyFile: string; publicKeyFile: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const privateKeyFile = join(dir, `${name}.key`);
  const publicKeyFile = join(dir, `${name}.pub`);
  writeFileSync(privateKeyFile, privateKey, { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey);
  return { privateKeyFile, publicKeyFile };
}
