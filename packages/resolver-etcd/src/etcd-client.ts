import { createRequire } from 'node:module';
import { Etcd3, type IOptions } from 'etcd3';
import type { EtcdConnectionSettings } from './etcd-options';

/** etcd3's own copy of grpc-js, so call credentials made here are the kind its channels use. */
const grpc = createRequire(require.resolve('etcd3'))(
  '@grpc/grpc-js',
) as typeof import('@grpc/grpc-js');

/** The gRPC metadata etcd reads as "this stream requires a leader" (Go's `WithRequireLeader`). */
export const REQUIRE_LEADER_METADATA: Readonly<Record<string, string>> = { hasleader: 'true' };

/**
 * Sent on every stream (watch, lease keepalive): a member cut off from the quorum refuses such a
 * stream, and cancels an open one with "no leader" after a few election timeouts without a
 * leader, instead of serving its stale data silently.
 */
const requireLeader = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(REQUIRE_LEADER_METADATA)) metadata.set(name, value);
  callback(null, metadata);
});

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * etcd3 re-opens a broken watch stream after this backoff. Our resolvers cancel their watchers on
 * a disconnect and open new ones themselves (from their own revision), so the stream only needs
 * to come back when asked; a short constant delay also keeps a closed client's last timer short.
 */
const WATCH_REOPEN_MS = 100;
const watchBackoff: WatchBackoff = {
  duration: WATCH_REOPEN_MS,
  next() {
    return watchBackoff;
  },
};

/**
 * A new etcd3 client for `settings`. Every unary call gets the settings' deadline (etcd3 has
 * none by default, so a call to an unreachable member could wait forever); streams (watch, lease
 * keepalive) get none, and require a leader. Each client has its own subchannels with a short reconnect backoff, so a
 * restarted etcd is reached again within seconds rather than after grpc-js's 2 minutes, and
 * keepalive pings notice a member that stopped answering.
 */
export function createEtcdClient(settings: EtcdConnectionSettings): Etcd3 {
  const { timeoutMs } = settings;
  const scheme = settings.secure ? 'https' : 'http';
  const options: IOptions = {
    hosts: settings.endpoints.map((e) => `${scheme}://${e}`),
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) =>
      context.isStream ? { credentials: requireLeader } : { deadline: Date.now() + timeoutMs },
    grpcOptions: {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      ...(settings.serverName
        ? {
            'grpc.ssl_target_name_override': settings.serverName,
            'grpc.default_authority': settings.serverName,
          }
        : {}),
    },
    faultHandling: { watchBackoff },
  };
  if (settings.secure && (settings.ca || settings.cert)) {
    options.credentials = {
      // grpc-js takes null for "the system's CAs"; etcd3's type insists on a Buffer.
      rootCertificate: settings.ca ?? (null as unknown as Buffer),
      ...(settings.key ? { privateKey: settings.key } : {}),
      ...(settings.cert ? { certChain: settings.cert } : {}),
    };
  }
  if (settings.auth) {
    options.auth = {
      username: settings.auth.username,
      password: settings.auth.password,
      callOptions: () => ({ deadline: Date.now() + timeoutMs }),
    };
  }
  return new Etcd3(options);
}

/**
 * What went wrong in words an operator can act on: `what` failed at `where` and why. The password
 * is scrubbed from the text even if a server or library ever echoed it.
 */
export function describeEtcdFailure(
  error: unknown,
  what: string,
  settings: EtcdConnectionSettings,
  where: string,
): string {
  const name = error instanceof Error ? error.constructor.name : '';
  const raw = error instanceof Error ? error.message : String(error);
  const detail = raw.replace(/^\w*Error: /, '');
  let reason: string;
  if (name === 'EtcdAuthenticationFailedError') {
    reason = `authentication failed for user "${settings.auth?.username ?? ''}" (wrong user name or password): ${detail}`;
  } else if (name === 'EtcdPermissionDeniedError') {
    reason = `permission denied for ${settings.auth ? `user "${settings.auth.username}"` : 'an unauthenticated client'}: ${detail}`;
  } else if (name === 'GRPCDeadlineExceededError') {
    reason = `no answer within ${settings.timeoutMs} ms`;
  } else if (name === 'BrokenCircuitError') {
    reason = 'etcd is unreachable (calls suspended after repeated failures)';
  } else if (name === 'EtcdWatchStreamEnded') {
    reason = 'the watch stream ended (etcd restarting or unreachable)';
  } else if (name === 'GRPCUnavailableError') {
    reason = `etcd is unreachable: ${detail}`;
  } else {
    reason = detail;
  }
  return scrub(`${what} at ${where} failed: ${reason}`, settings);
}

export function scrub(text: string, settings: EtcdConnectionSettings): string {
  const password = settings.auth?.password;
  return password && password.length >= 3 ? text.split(password).join('***') : text;
}
