import { X509Certificate } from 'node:crypto';

import { Command, InvalidArgumentError, Option } from 'commander';
import {
  Backoff,
  ConfigError,
  normalizeEndpoint,
  parseTargetUri,
  redactSecrets,
  SOURCE_LABEL,
  TargetError,
  type EndpointResolver,
  type NormalizedEndpoint,
  type Resolution,
} from '@grpc-lb/core';

import type { CliCommand, CommandContext } from '../command';
import type { ConsulFlags } from '../consul-settings';
import { InputError, UnhealthyError, UsageError } from '../errors';
import { checkEtcdFlags, type EtcdFlags } from '../etcd-settings';
import { oneLine, writeJson, writeTable, writeWarnings, type TableColumn } from '../output';
import { mapLimited, probeEndpoint, probeHealthy, type ProbeResult, type ProbeTls } from '../probe';
import { ProgressLine } from '../progress';
import { createSchemeLookup, type RegistryOptions } from '../resolvers';

const ENDPOINTS = 'grpc-lb endpoints';
const DEFAULT_TIMEOUT_S = 10;

/** The options of every command that resolves a target: the timeout and where the registries are. */
export interface ResolveOptions extends ConsulFlags, EtcdFlags {
  readonly timeout: number;
  readonly kubeconfig?: string;
  readonly context?: string;
}

interface EndpointsOptions extends ResolveOptions {
  readonly json?: boolean;
  readonly watch?: boolean;
  readonly probe?: boolean;
  readonly healthService: string;
  readonly probeTimeout: number;
  readonly probeConcurrency: number;
  readonly probeTls?: boolean;
  readonly probeCacert?: string;
  readonly probeServerName?: string;
}

const DEFAULT_PROBE_TIMEOUT_S = 3;
const DEFAULT_PROBE_CONCURRENCY = 16;
const MAX_PROBE_CONCURRENCY = 256;

/** One resolution as shown: endpoints validated as a channel validates them, and what came with them. */
export interface Shown {
  readonly endpoints: readonly NormalizedEndpoint[];
  readonly note: string | undefined;
  readonly serviceConfigSource: string | undefined;
  readonly serviceConfig: string | undefined;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > 3600) {
    throw new InvalidArgumentError('expected a number of seconds greater than 0, at most 3600');
  }
  return n;
}

function concurrency(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > MAX_PROBE_CONCURRENCY) {
    throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_PROBE_CONCURRENCY}`);
  }
  return n;
}

function clock(date = new Date()): string {
  return date.toISOString().slice(11, 23);
}

/** Endpoints validated as core's adapter validates them; a bad one is skipped with a warning. */
function show(resolution: Resolution, warn: (message: string) => void): Shown {
  const endpoints: NormalizedEndpoint[] = [];
  const seen = new Set<string>();
  for (const raw of resolution.endpoints) {
    try {
      const endpoint = normalizeEndpoint(raw);
      if (seen.has(endpoint.key)) continue;
      seen.add(endpoint.key);
      endpoints.push(endpoint);
    } catch (error) {
      warn(`skipped an endpoint: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  endpoints.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const config = resolution.serviceConfig;
  return {
    endpoints,
    note: resolution.note,
    serviceConfigSource: resolution.serviceConfigSource,
    serviceConfig:
      config === undefined
        ? undefined
        : typeof config === 'string'
          ? config
          : JSON.stringify(config),
  };
}

export function otherLabels(endpoint: NormalizedEndpoint): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(endpoint.labels)) {
    if (name !== SOURCE_LABEL) labels[name] = value;
  }
  return labels;
}

function labelText(endpoint: NormalizedEndpoint): string {
  return Object.entries(otherLabels(endpoint))
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
}

function endpointJson(endpoint: NormalizedEndpoint, probe?: ProbeResult): Record<string, unknown> {
  return {
    address: endpoint.key,
    weight: endpoint.weight,
    zone: endpoint.zone ?? null,
    source: endpoint.labels[SOURCE_LABEL] ?? null,
    labels: otherLabels(endpoint),
    ...(probe === undefined
      ? {}
      : { probe: { ...probe, error: probe.error === null ? null : oneLine(probe.error) } }),
  };
}

function resolutionJson(
  target: string,
  shown: Shown,
  probes?: readonly ProbeResult[],
): Record<string, unknown> {
  return {
    target: redactSecrets(target),
    endpoints: shown.endpoints.map((e, i) => endpointJson(e, probes?.[i])),
    note: shown.note === undefined ? null : oneLine(shown.note),
    serviceConfigSource:
      shown.serviceConfigSource === undefined ? null : oneLine(shown.serviceConfigSource),
  };
}

function msText(value: number | null): string {
  return value === null ? '-' : `${value.toFixed(1)} ms`;
}

function writeResolution(
  context: CommandContext,
  shown: Shown,
  probes?: readonly ProbeResult[],
): void {
  const { io } = context;
  if (shown.endpoints.length === 0) {
    io.writeOut('no endpoints\n');
  } else {
    const columns: TableColumn[] = [
      { heading: 'ADDRESS' },
      { heading: 'WEIGHT', align: 'right' },
      { heading: 'ZONE' },
      { heading: 'SOURCE' },
      { heading: 'LABELS' },
    ];
    if (probes !== undefined) {
      columns.push(
        { heading: 'STATE' },
        { heading: 'HEALTH' },
        { heading: 'CONNECT', align: 'right' },
        { heading: 'CHECK', align: 'right' },
      );
    }
    writeTable(
      io,
      columns,
      shown.endpoints.map((e, i) => {
        const row = [
          e.key,
          String(e.weight),
          e.zone ?? '-',
          e.labels[SOURCE_LABEL] ?? '-',
          labelText(e) || '-',
        ];
        const probe = probes?.[i];
        if (probe !== undefined) {
          row.push(
            probe.state,
            probe.health ?? '-',
            msText(probe.connectMs),
            msText(probe.checkMs),
          );
        }
        return row;
      }),
    );
  }
  if (probes !== undefined) {
    shown.endpoints.forEach((e, i) => {
      const probe = probes[i];
      if (probe?.error != null) {
        io.writeOut(
          `${e.key}: ${probe.health === null ? probe.state : probe.health}: ${oneLine(probe.error)}\n`,
        );
      }
    });
  }
  if (shown.note !== undefined) io.writeOut(`note: ${oneLine(shown.note)}\n`);
  io.writeOut(
    `service config: ${shown.serviceConfigSource === undefined ? "none from the registry (the channel's own applies)" : oneLine(shown.serviceConfigSource)}\n`,
  );
}

function describeEndpoint(endpoint: NormalizedEndpoint): string {
  const parts = [`weight=${endpoint.weight}`];
  if (endpoint.zone !== undefined) parts.push(`zone=${endpoint.zone}`);
  const source = endpoint.labels[SOURCE_LABEL];
  if (source !== undefined) parts.push(`source=${source}`);
  const labels = labelText(endpoint);
  if (labels !== '') parts.push(`labels=${labels}`);
  return `${endpoint.key} ${parts.join(' ')}`;
}

function sameEndpoint(a: NormalizedEndpoint, b: NormalizedEndpoint): boolean {
  return describeEndpoint(a) === describeEndpoint(b);
}

/** What changed from `before` to `after`, one line (or JSON object) per change, with the time. */
function writeChanges(
  context: CommandContext,
  json: boolean,
  before: Shown,
  after: Shown,
  at: Date,
): void {
  const { io } = context;
  const time = json ? at.toISOString() : clock(at);
  const old = new Map(before.endpoints.map((e) => [e.key, e]));
  const now = new Map(after.endpoints.map((e) => [e.key, e]));
  const emit = (event: string, text: string, extra: Record<string, unknown>) => {
    if (json) writeJson(io, { time, event, ...extra }, { compact: true });
    else io.writeOut(`${time} ${event} ${text}\n`);
  };
  for (const endpoint of before.endpoints) {
    if (!now.has(endpoint.key)) {
      emit('removed', endpoint.key, { endpoint: endpointJson(endpoint) });
    }
  }
  for (const endpoint of after.endpoints) {
    const previous = old.get(endpoint.key);
    if (previous === undefined) {
      emit('added', describeEndpoint(endpoint), { endpoint: endpointJson(endpoint) });
    } else if (!sameEndpoint(previous, endpoint)) {
      emit('changed', describeEndpoint(endpoint), {
        endpoint: endpointJson(endpoint),
        was: endpointJson(previous),
      });
    }
  }
  if (before.serviceConfigSource !== after.serviceConfigSource) {
    const source = after.serviceConfigSource ?? 'none';
    emit('service-config', oneLine(source), {
      serviceConfigSource: after.serviceConfigSource === undefined ? null : oneLine(source),
    });
  }
}

/** The resolver's progress, as events the command waits on. */
type Event =
  | { readonly kind: 'update'; readonly resolution: Resolution; readonly at: Date }
  | { readonly kind: 'error'; readonly error: Error };

/**
 * Drives the resolver of `target` (as a channel would, without one) until its first resolution,
 * or throws an InputError when none comes within `options.timeout`; `command` names the command
 * a malformed target is a usage error of. `first` receives the resolution; with `options.watch`
 * the resolver then keeps running and every change is printed, until SIGINT or SIGTERM.
 */
export async function resolveTarget(
  context: CommandContext,
  target: string,
  options: ResolveOptions & { readonly watch?: boolean; readonly json?: boolean },
  command: string,
  first: (shown: Shown) => void | Promise<void>,
): Promise<void> {
  const { io } = context;
  checkEtcdFlags(options, command);
  const registries: RegistryOptions = Object.fromEntries(
    (
      [
        ['kubeconfig', options.kubeconfig],
        ['kubeContext', options.context],
        ['consulAddr', options.consulAddr],
        ['consulTokenFile', options.consulTokenFile],
        ['consulCacert', options.consulCacert],
        ['consulClientCert', options.consulClientCert],
        ['consulClientKey', options.consulClientKey],
        ['consulTlsServerName', options.consulTlsServerName],
        ['etcdEndpoints', options.etcdEndpoints],
        ['etcdCacert', options.etcdCacert],
        ['etcdCert', options.etcdCert],
        ['etcdKey', options.etcdKey],
        ['etcdUser', options.etcdUser],
        ['etcdPasswordFile', options.etcdPasswordFile],
      ] as const
    ).filter(([, value]) => value !== undefined),
  );
  const lookup = createSchemeLookup(registries);
  let resolver: EndpointResolver;
  try {
    const uri = parseTargetUri(target);
    const factory = lookup.get(uri.scheme);
    if (factory === undefined) {
      throw new UsageError(
        `unknown scheme "${uri.scheme}:" in ${redactSecrets(target)} (known: ${lookup
          .schemes()
          .map((s) => `${s}:`)
          .join(', ')})`,
        command,
      );
    }
    const parsed = factory.parseTarget(uri, target);
    resolver = factory.create(parsed, { target, channelOptions: {} });
  } catch (error) {
    if (error instanceof TargetError) throw new UsageError(error.message, command);
    if (error instanceof ConfigError) throw new InputError(error.message, { cause: error });
    throw error;
  }

  const warn = (message: string) => writeWarnings(io, [message]);
  let wake: (() => void) | undefined;
  const events: Event[] = [];
  const push = (event: Event) => {
    events.push(event);
    const w = wake;
    wake = undefined;
    w?.();
  };
  const next = () =>
    new Promise<void>((resolve) => {
      if (events.length > 0) resolve();
      else wake = resolve;
    });

  const backoff = new Backoff({ initialMs: 250, maxMs: 5_000 });
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (retry !== undefined) clearTimeout(retry);
    resolver.stop();
  };
  const scheduleRetry = () => {
    if (retry !== undefined || stopped) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (!stopped) resolver.refresh();
    }, backoff.next());
    retry.unref();
  };

  // The first resolution, or the last error when none comes within --timeout.
  const progress = new ProgressLine(io);
  progress.start((elapsed) => `resolving ${redactSecrets(target)}… ${elapsed} s`);
  let timedOut = false;
  // Held (not unref'd): it is what keeps the command waiting for a registry that does not answer.
  const deadline = setTimeout(() => {
    timedOut = true;
    const w = wake;
    wake = undefined;
    w?.();
  }, options.timeout * 1000);

  let lastError: Error | undefined;
  let initial: Resolution | undefined;
  try {
    resolver.start({
      update: (resolution) => push({ kind: 'update', resolution, at: new Date() }),
      error: (error) => push({ kind: 'error', error }),
      warn: (message) => warn(message),
    });
    while (initial === undefined && !timedOut) {
      await next();
      for (const event of events.splice(0)) {
        if (event.kind === 'update') {
          initial = event.resolution;
          backoff.reset();
        } else if (initial === undefined) {
          // A setting that is wrong (a kubeconfig that does not exist) will not mend by waiting.
          if (event.error instanceof ConfigError) {
            throw new InputError(event.error.message, { cause: event.error });
          }
          lastError = event.error;
          scheduleRetry();
        }
      }
    }
  } finally {
    clearTimeout(deadline);
    progress.clear();
    if (initial === undefined || options.watch !== true) stop();
  }
  if (initial === undefined) {
    // grpc-js ends some messages (an etcd client's) with an empty "Resolution note:".
    const why =
      lastError === undefined
        ? 'no answer'
        : (lastError.message || lastError.name).replace(/\.?\s*Resolution note:\s*$/, '');
    throw new InputError(
      `cannot resolve ${redactSecrets(target)} within ${options.timeout} s: ${why}`,
    );
  }

  let current = show(initial, warn);
  await first(current);
  if (options.watch !== true) return;

  // --watch: every later resolution, as changes, until SIGINT or SIGTERM.
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    const w = wake;
    wake = undefined;
    w?.();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  // Held: a watch runs until it is interrupted, even while the registry is silent.
  const alive = setInterval(() => {}, 60_000);
  let failing = false;
  try {
    for (;;) {
      await next();
      if (interrupted) break;
      for (const event of events.splice(0)) {
        if (event.kind === 'update') {
          backoff.reset();
          if (failing) {
            failing = false;
            warn(`${clock(event.at)} the registry answers again`);
          }
          const shown = show(event.resolution, warn);
          writeChanges(context, options.json === true, current, shown, event.at);
          current = shown;
        } else {
          if (!failing) {
            failing = true;
            warn(`${clock()} ${event.error.message} (keeping the last endpoints; retrying)`);
          }
          scheduleRetry();
        }
      }
    }
  } finally {
    clearInterval(alive);
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
    stop();
  }
}

/** Adds the options of a command that resolves a target: --timeout and where the registries are. */
export function addResolveOptions(command: Command): Command {
  return command
    .option(
      '--timeout <seconds>',
      'give up when the first resolution has not come in this time',
      seconds,
      DEFAULT_TIMEOUT_S,
    )
    .option(
      '--kubeconfig <file>',
      'kubeconfig for k8s: targets (default: $KUBECONFIG, in-cluster, ~/.kube/config)',
    )
    .option('--context <name>', 'kubeconfig context (default: its current context)')
    .option(
      '--consul-addr <address>',
      'Consul agent HTTP API, https://… for TLS (default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500)',
    )
    .option(
      '--consul-token-file <file>',
      'file holding the Consul ACL token (default: $CONSUL_HTTP_TOKEN_FILE, else $CONSUL_HTTP_TOKEN)',
    )
    .option(
      '--consul-cacert <file>',
      "CA of an https:// agent's certificate (default: $CONSUL_CACERT, else the system CAs)",
    )
    .option(
      '--consul-client-cert <file>',
      'client certificate for an agent that requires one, with --consul-client-key (default: $CONSUL_CLIENT_CERT)',
    )
    .option(
      '--consul-client-key <file>',
      'key of the Consul client certificate (default: $CONSUL_CLIENT_KEY)',
    )
    .option(
      '--consul-tls-server-name <name>',
      "name the agent's certificate must carry, when not the address's host (default: $CONSUL_TLS_SERVER_NAME)",
    )
    .option(
      '--etcd-endpoints <list>',
      'etcd members, comma-separated (default: $ETCD_ENDPOINTS, else $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)',
    )
    .option(
      '--etcd-cacert <file>',
      "CA of etcd's TLS certificate; turns TLS on (default: $ETCDCTL_CACERT)",
    )
    .option(
      '--etcd-cert <file>',
      'client certificate for etcd, with --etcd-key (default: $ETCDCTL_CERT)',
    )
    .option('--etcd-key <file>', 'key of the etcd client certificate (default: $ETCDCTL_KEY)')
    .option(
      '--etcd-user <name>',
      'etcd user; the password comes from $ETCDCTL_PASSWORD or --etcd-password-file, never a flag (default: $ETCDCTL_USER, which may be user:password)',
    )
    .option('--etcd-password-file <file>', "file holding the etcd user's password");
}

/** Whether `pem` holds at least one certificate block, each of which parses. */
function holdsPemCertificates(pem: string): boolean {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (blocks === null) return false;
  try {
    for (const block of blocks) new X509Certificate(block);
    return true;
  } catch {
    return false;
  }
}

/** TLS for the probes: on with --probe-tls, --probe-cacert or --probe-server-name; else undefined. */
async function probeTls(
  context: CommandContext,
  options: EndpointsOptions,
): Promise<ProbeTls | undefined> {
  const { probeCacert, probeServerName } = options;
  if (options.probeTls !== true && probeCacert === undefined && probeServerName === undefined) {
    return undefined;
  }
  let ca: Buffer | undefined;
  if (probeCacert !== undefined) {
    let pem: string;
    try {
      pem = await context.io.readFile(probeCacert);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
      throw new InputError(
        `cannot read the CA certificate ${probeCacert} (--probe-cacert): ${why ?? String(error)}`,
      );
    }
    // TLS takes a file without a certificate silently, and every probe would then fail to
    // verify: say so once, here.
    if (!holdsPemCertificates(pem)) {
      throw new InputError(
        `the CA certificate ${probeCacert} (--probe-cacert) is not PEM certificates`,
      );
    }
    ca = Buffer.from(pem, 'utf8');
  }
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(probeServerName === undefined ? {} : { serverName: probeServerName }),
  };
}

/** Probes every endpoint of `shown`, a bounded number at once, with a progress line on a terminal. */
async function probeAll(
  context: CommandContext,
  shown: Shown,
  options: EndpointsOptions,
): Promise<ProbeResult[]> {
  const tls = await probeTls(context, options);
  const progress = new ProgressLine(context.io);
  const total = shown.endpoints.length;
  let done = 0;
  progress.start((elapsed) => `probing endpoints: ${done} of ${total} done… ${elapsed} s`);
  try {
    return await mapLimited(
      shown.endpoints,
      options.probeConcurrency,
      (endpoint) =>
        probeEndpoint(endpoint.key, {
          timeoutMs: options.probeTimeout * 1000,
          healthService: options.healthService,
          ...(tls === undefined ? {} : { tls }),
        }),
      (count) => {
        done = count;
      },
    );
  } finally {
    progress.clear();
  }
}

const PROBE_OPTIONS = [
  ['healthService', '--health-service'],
  ['probeTimeout', '--probe-timeout'],
  ['probeConcurrency', '--probe-concurrency'],
  ['probeTls', '--probe-tls'],
  ['probeCacert', '--probe-cacert'],
  ['probeServerName', '--probe-server-name'],
] as const;

/** `grpc-lb endpoints <target>`: what a target resolves to, as a channel would see it. */
export const endpointsCommand: CliCommand = {
  name: 'endpoints',
  create: (context) =>
    addResolveOptions(
      new Command('endpoints')
        .description(
          'Resolve a target with the resolvers an application uses and print its endpoints (address, weight, zone, source, labels); with --probe, also connect to each and ask its health',
        )
        .argument(
          '<target>',
          'a grpc-lb target: static:, composite:, dns+lb:, k8s:, etcd:, consul:…',
        )
        .option('--json', 'print JSON instead of a table (with --watch, one JSON object per line)')
        .option(
          '-w, --watch',
          'keep watching and print additions, removals and changes, with times',
        )
        .addOption(
          new Option(
            '--probe',
            'connect to every endpoint (plaintext unless a --probe-tls option says otherwise) and show the state reached, its grpc.health.v1 status and latencies',
          ).conflicts('watch'),
        )
        .option(
          '--health-service <name>',
          'with --probe: the service name the health Check asks about ("": the whole server)',
          '',
        )
        .option(
          '--probe-timeout <seconds>',
          'with --probe: how long each endpoint gets to connect and answer',
          seconds,
          DEFAULT_PROBE_TIMEOUT_S,
        )
        .option(
          '--probe-concurrency <n>',
          'with --probe: how many endpoints are probed at once',
          concurrency,
          DEFAULT_PROBE_CONCURRENCY,
        )
        .option(
          '--probe-tls',
          "with --probe: connect with TLS, checking the endpoints' certificates",
        )
        .option(
          '--probe-cacert <file>',
          "with --probe: TLS, checking the endpoints' certificates against this CA (default: the system's)",
        )
        .option(
          '--probe-server-name <name>',
          'with --probe: TLS, expecting this name in the certificates instead of the address dialled',
        ),
    )
      .addHelpText(
        'after',
        `
Without --probe nothing connects to the endpoints: the target's resolver is driven directly, as a
channel's would be. The table (or JSON) goes to stdout with the resolution's note and the service
config document the registry holds for it, if any; warnings go to stderr. With --watch, each
change is printed as it happens ("added", "removed", "changed", "service-config"), with its time,
until Ctrl-C.

With --probe, each endpoint gets an HTTP/2 connection of its own (plaintext, or TLS with
--probe-tls, --probe-cacert or --probe-server-name; at most --probe-concurrency at once, each
closed when its probe ends) and one grpc.health.v1.Health/Check: STATE is the connectivity state
reached within --probe-timeout (READY, TRANSIENT_FAILURE with the reason below the table,
CONNECTING when it timed out), HEALTH the Check's answer (SERVING, NOT_SERVING, SERVICE_UNKNOWN,
UNKNOWN; UNIMPLEMENTED: no health service, which a balancer counts as healthy; ERROR: see below
the table), CONNECT the time to READY and CHECK the Check's round trip.

Exit status: 0 resolved (or a watch interrupted; with --probe, every endpoint READY and SERVING
or without a health service), 1 the registry could not be read within --timeout or a setting is
wrong, 2 a usage error (a malformed target), 3 with --probe: resolved, but some endpoints cannot
take calls (the output lists them).

Examples:
  grpc-lb endpoints 'static:///127.0.0.2:50051;version=v1,127.0.0.3:50051;version=v2'
  grpc-lb endpoints etcd:///services/hello --etcd-endpoints 10.0.0.5:2379 --json
  CONSUL_HTTP_ADDR=consul.internal:8500 grpc-lb endpoints consul:///hello --watch
  grpc-lb endpoints 'composite:///hello?vms=consul:///hello&pods=k8s:///hello.prod:grpc'
  grpc-lb endpoints k8s:///hello.prod:grpc --probe --health-service helloworld.Greeter
`,
      )
      .action(async (target: string, _options: unknown, command: Command) => {
        const options = command.opts<EndpointsOptions>();
        if (options.probe !== true) {
          for (const [key, flag] of PROBE_OPTIONS) {
            if (command.getOptionValueSource(key) === 'cli') {
              throw new UsageError(`${flag} applies only with --probe`, ENDPOINTS);
            }
          }
        }
        await resolveTarget(context, target, options, ENDPOINTS, async (shown) => {
          const probes =
            options.probe === true ? await probeAll(context, shown, options) : undefined;
          const healthy = probes?.filter(probeHealthy).length ?? 0;
          if (options.json === true) {
            if (options.watch === true) {
              writeJson(
                context.io,
                {
                  time: new Date().toISOString(),
                  event: 'resolved',
                  ...resolutionJson(target, shown),
                },
                { compact: true },
              );
            } else {
              writeJson(context.io, {
                ...resolutionJson(target, shown, probes),
                ...(probes === undefined
                  ? {}
                  : {
                      probe: {
                        healthService: options.healthService,
                        timeoutSeconds: options.probeTimeout,
                        endpoints: probes.length,
                        healthy,
                      },
                    }),
              });
            }
          } else {
            writeResolution(context, shown, probes);
          }
          if (probes !== undefined && healthy < probes.length) {
            throw new UnhealthyError(
              `${probes.length - healthy} of ${probes.length} endpoints cannot take calls (not READY, or not SERVING)`,
            );
          }
        });
      }),
};
