import { readFileSync } from 'node:fs';

import type { EtcdConnectionOptions } from '@grpc-lb/resolver-etcd';

import { InputError, UsageError } from './errors';

/** The etcd settings of the command line; each falls back to the environment etcdctl reads. */
export interface EtcdFlags {
  readonly etcdEndpoints?: string;
  readonly etcdCacert?: string;
  readonly etcdCert?: string;
  readonly etcdKey?: string;
  readonly etcdUser?: string;
  readonly etcdPasswordFile?: string;
}

/** Where a setting came from, for messages: the flag, or the environment variable. */
function pick(
  flag: string | undefined,
  flagName: string,
  env: NodeJS.ProcessEnv,
  envName: string,
): { value: string; from: string } | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  const value = env[envName];
  return value !== undefined && value.trim() !== '' ? { value, from: `$${envName}` } : undefined;
}

function readSetting(setting: { value: string; from: string }, what: string): Buffer {
  try {
    return readFileSync(setting.value);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new InputError(
      `cannot read the ${what} ${setting.value} (${setting.from}): ${why ?? String(error)}`,
    );
  }
}

/**
 * A user name given on the command line must not carry a password (`user:password`, as etcdctl's
 * `--user` takes): a command line is visible to every user of the machine. Checked before
 * anything runs, whatever the target; the value is never repeated.
 */
export function checkEtcdFlags(flags: EtcdFlags, command: string): void {
  if (flags.etcdUser?.includes(':') === true) {
    throw new UsageError(
      '--etcd-user takes a user name only, not user:password (a command line is visible to other users): give the password in $ETCDCTL_PASSWORD or a file with --etcd-password-file',
      command,
    );
  }
}

/**
 * The etcd resolver's connection options from the flags, else the variables etcdctl reads:
 * `--etcd-endpoints` / `$ETCDCTL_ENDPOINTS` (only when `$ETCD_ENDPOINTS`, which the resolver reads
 * itself as an application would, is not set), `--etcd-cacert` / `$ETCDCTL_CACERT`, `--etcd-cert`
 * / `$ETCDCTL_CERT`, `--etcd-key` / `$ETCDCTL_KEY`, `--etcd-user` / `$ETCDCTL_USER` (the variable
 * may be `user:password`), and the password from `--etcd-password-file`, else `$ETCDCTL_PASSWORD`,
 * else `$ETCDCTL_USER`'s `:password`. Files are read here; a setting that cannot be used is an
 * InputError naming the flag or variable (never a password).
 */
export function etcdConnectionOptions(
  flags: EtcdFlags,
  env: NodeJS.ProcessEnv = process.env,
): EtcdConnectionOptions {
  const options: {
    endpoints?: string;
    tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
    auth?: { username: string; password: string };
  } = {};
  if (flags.etcdEndpoints !== undefined) {
    options.endpoints = flags.etcdEndpoints;
  } else if ((env['ETCD_ENDPOINTS'] ?? '').trim() === '') {
    const fromEnv = pick(undefined, '', env, 'ETCDCTL_ENDPOINTS');
    if (fromEnv !== undefined) options.endpoints = fromEnv.value;
  }

  const ca = pick(flags.etcdCacert, '--etcd-cacert', env, 'ETCDCTL_CACERT');
  const cert = pick(flags.etcdCert, '--etcd-cert', env, 'ETCDCTL_CERT');
  const key = pick(flags.etcdKey, '--etcd-key', env, 'ETCDCTL_KEY');
  if ((cert === undefined) !== (key === undefined)) {
    throw new InputError(
      `an etcd client certificate needs both a certificate and its key: ${cert?.from ?? key?.from} is set, ${cert === undefined ? '--etcd-cert ($ETCDCTL_CERT)' : '--etcd-key ($ETCDCTL_KEY)'} is not`,
    );
  }
  if (ca !== undefined || cert !== undefined) {
    options.tls = {
      ...(ca === undefined ? {} : { ca: readSetting(ca, 'etcd CA certificate') }),
      ...(cert === undefined ? {} : { cert: readSetting(cert, 'etcd client certificate') }),
      ...(key === undefined ? {} : { key: readSetting(key, 'etcd client key') }),
    };
  }

  const user = pick(flags.etcdUser, '--etcd-user', env, 'ETCDCTL_USER');
  const passwordFile =
    flags.etcdPasswordFile === undefined
      ? undefined
      : { value: flags.etcdPasswordFile, from: '--etcd-password-file' };
  if (user === undefined) {
    if (passwordFile !== undefined) {
      throw new InputError(
        '--etcd-password-file is set but no etcd user is: give one with --etcd-user or $ETCDCTL_USER',
      );
    }
    return options;
  }
  const colon = user.from === '--etcd-user' ? -1 : user.value.indexOf(':');
  const username = colon === -1 ? user.value : user.value.slice(0, colon);
  let password: string | undefined;
  if (passwordFile !== undefined) {
    password = readSetting(passwordFile, 'etcd password file')
      .toString('utf8')
      .replace(/\r?\n$/, '');
  } else if (env['ETCDCTL_PASSWORD'] !== undefined) {
    password = env['ETCDCTL_PASSWORD'];
  } else if (colon !== -1) {
    password = user.value.slice(colon + 1);
  }
  if (username === '') {
    throw new InputError(`the etcd user name (${user.from}) is empty`);
  }
  if (password === undefined) {
    throw new InputError(
      `etcd user "${username}" (${user.from}) has no password: give it in $ETCDCTL_PASSWORD or a file with --etcd-password-file`,
    );
  }
  options.auth = { username, password };
  return options;
}
