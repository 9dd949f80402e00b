import { readFileSync } from 'node:fs';

import type { ConsulResolverFactoryOptions } from '@grpc-lb/resolver-consul';

import { InputError } from './errors';

/**
 * The Consul settings of the command line. Each left out falls back to what the Consul resolver
 * reads itself, as in an application (and as the `consul` CLI does): `CONSUL_HTTP_ADDR`,
 * `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_TOKEN`, `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`,
 * `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`, `CONSUL_HTTP_SSL`, `CONSUL_HTTP_SSL_VERIFY`.
 */
export interface ConsulFlags {
  readonly consulAddr?: string;
  readonly consulTokenFile?: string;
  readonly consulCacert?: string;
  readonly consulClientCert?: string;
  readonly consulClientKey?: string;
  readonly consulTlsServerName?: string;
}

function readPem(file: string, what: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new InputError(`cannot read the ${what} ${file} (${flag}): ${why ?? String(error)}`);
  }
}

/** The Consul resolver's options from the flags (files read here, a failure naming the flag). */
export function consulOptions(flags: ConsulFlags): ConsulResolverFactoryOptions {
  return {
    ...(flags.consulAddr === undefined ? {} : { address: flags.consulAddr }),
    ...(flags.consulTokenFile === undefined ? {} : { tokenFile: flags.consulTokenFile }),
    ...(flags.consulCacert === undefined
      ? {}
      : { ca: readPem(flags.consulCacert, 'Consul CA certificate', '--consul-cacert') }),
    ...(flags.consulClientCert === undefined
      ? {}
      : {
          cert: readPem(
            flags.consulClientCert,
            'Consul client certificate',
            '--consul-client-cert',
          ),
        }),
    ...(flags.consulClientKey === undefined
      ? {}
      : { key: readPem(flags.consulClientKey, 'Consul client key', '--consul-client-key') }),
    ...(flags.consulTlsServerName === undefined
      ? {}
      : { tlsServerName: flags.consulTlsServerName }),
  };
}
