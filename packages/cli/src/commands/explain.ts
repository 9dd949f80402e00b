import { Command, InvalidArgumentError } from 'commander';

import {
  ConfigError,
  parseTrafficSplitConfig,
  readServiceConfig,
  redactSecrets,
  routeMatches,
  TRAFFIC_SPLIT_POLICY,
  withDefaultPolicy,
  type NormalizedEndpoint,
  type RouteConfig,
  type ServiceConfigJson,
  type TrafficSplitConfig,
} from '@grpc-lb/core';

import type { CliCommand, CommandContext } from '../command';
import { InputError, UsageError } from '../errors';
import { readInputFiles } from '../input-files';
import { oneLine, writeJson, writeTable, writeWarnings } from '../output';
import { addResolveOptions, resolveTarget, type ResolveOptions, type Shown } from './endpoints';

const EXPLAIN = 'grpc-lb explain';
const METHOD = /^\/[^/\s]+\/[^/\s]+$/;

interface ExplainOptions extends ResolveOptions {
  readonly method: string;
  readonly header: readonly Header[];
  readonly config?: string;
  readonly json?: boolean;
}

interface Header {
  readonly name: string;
  readonly value: string;
}

/** `--header k=v`, repeatable; names are lower-cased as gRPC metadata keys are. */
function header(value: string, previous: readonly Header[] = []): readonly Header[] {
  const at = value.indexOf('=');
  const name = at < 0 ? '' : value.slice(0, at).trim().toLowerCase();
  if (at < 0 || name === '' || /[^a-z0-9_.-]/.test(name)) {
    throw new InvalidArgumentError(
      'expected name=value, the name made of letters, digits, "-", "_" and "."',
    );
  }
  return [...previous, { name, value: value.slice(at + 1) }];
}

/** The service config a channel would follow, and where it comes from. */
interface Followed {
  readonly config: ServiceConfigJson;
  /** `--config split.json`, the registry document's source, or undefined for none. */
  readonly source: string | undefined;
}

async function followed(
  context: CommandContext,
  options: ExplainOptions,
  shown: Shown,
): Promise<Followed> {
  const warn = (message: string) => writeWarnings(context.io, [message]);
  if (options.config !== undefined) {
    const [file] = await readInputFiles(context.io, [options.config], EXPLAIN);
    const source = `--config ${file!.name}`;
    if (shown.serviceConfigSource !== undefined) {
      warn(
        `the target carries a service config (${oneLine(shown.serviceConfigSource)}), which a channel follows instead of its own grpc.service_config; explaining ${source} as asked`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(file!.text);
    } catch (error) {
      throw new InputError(`${source}: not valid JSON (${(error as Error).message})`);
    }
    try {
      return { config: readServiceConfig(json, source).config, source };
    } catch (error) {
      if (error instanceof ConfigError) throw new InputError(error.message, { cause: error });
      throw error;
    }
  }
  if (shown.serviceConfig === undefined) return { config: {}, source: undefined };
  const source = oneLine(shown.serviceConfigSource ?? 'the resolution');
  let json: unknown;
  try {
    json = JSON.parse(shown.serviceConfig);
  } catch (error) {
    throw new InputError(`${source}: not valid JSON (${(error as Error).message})`);
  }
  try {
    const read = readServiceConfig(json, source, { origin: 'resolver' });
    for (const field of read.ignoredFields) warn(`${source}: ignored unknown field ${field}`);
    return { config: read.config, source };
  } catch (error) {
    if (error instanceof ConfigError) throw new InputError(error.message, { cause: error });
    throw error;
  }
}

/** The policy a channel uses: the first listed (our round robin when none is). */
function firstPolicy(config: ServiceConfigJson): { name: string; body: unknown } {
  const list = withDefaultPolicy(config)['loadBalancingConfig'] as readonly Record<
    string,
    unknown
  >[];
  const name = Object.keys(list[0]!)[0]!;
  return { name, body: list[0]![name] };
}

function hasLabels(endpoint: NormalizedEndpoint, wanted: Readonly<Record<string, string>>) {
  for (const key of Object.keys(wanted)) {
    if (endpoint.labels[key] !== wanted[key]) return false;
  }
  return true;
}

interface SubsetShare {
  readonly subset: string;
  readonly weight: number;
  readonly share: number;
  readonly policy: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly endpoints: readonly string[];
}

interface Explanation {
  readonly policy: string;
  /** For a traffic split: the route the call matches, or null when none does. */
  readonly route?: { readonly name: string; readonly index: number } | null;
  readonly routes?: number;
  readonly split?: readonly SubsetShare[];
  readonly onEmptySubset?: 'redistribute' | 'fail';
  /** Every endpoint a call may go to when no subset split applies. */
  readonly candidates?: readonly string[];
}

function percent(weight: number, total: number): number {
  return total === 0 ? 0 : Math.round((weight / total) * 10000) / 100;
}

function explainSplit(
  split: TrafficSplitConfig,
  method: string,
  headers: readonly Header[],
  endpoints: readonly NormalizedEndpoint[],
): Explanation {
  const read = (name: string) => headers.filter((h) => h.name === name).map((h) => h.value);
  const index = split.routes.findIndex((r) => routeMatches(r.match, method, read));
  const base = {
    policy: TRAFFIC_SPLIT_POLICY,
    routes: split.routes.length,
    onEmptySubset: split.onEmptySubset,
  };
  if (index < 0) {
    return { ...base, route: null, candidates: endpoints.map((e) => e.key) };
  }
  const route: RouteConfig = split.routes[index]!;
  const total = route.split.reduce((sum, t) => sum + t.weight, 0);
  return {
    ...base,
    route: { name: route.name, index },
    split: route.split.map((t) => {
      const subset = split.subsets.find((s) => s.name === t.subset)!;
      return {
        subset: t.subset,
        weight: t.weight,
        share: percent(t.weight, total),
        policy: subset.policy,
        labels: subset.labels,
        endpoints: endpoints.filter((e) => hasLabels(e, subset.labels)).map((e) => e.key),
      };
    }),
  };
}

function explain(
  followedConfig: Followed,
  method: string,
  headers: readonly Header[],
  endpoints: readonly NormalizedEndpoint[],
): Explanation {
  const policy = firstPolicy(followedConfig.config);
  if (policy.name === TRAFFIC_SPLIT_POLICY) {
    // Already checked by readServiceConfig; parsed again into its typed shape.
    const split = parseTrafficSplitConfig(policy.body);
    return explainSplit(split, method, headers, endpoints);
  }
  return { policy: policy.name, candidates: endpoints.map((e) => e.key) };
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const text = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text === '' ? 'every endpoint' : text;
}

function writeExplanation(
  context: CommandContext,
  target: string,
  options: ExplainOptions,
  source: string | undefined,
  shown: Shown,
  explanation: Explanation,
): void {
  const { io } = context;
  const line = (text: string) => io.writeOut(`${text}\n`);
  line(`target:         ${redactSecrets(target)}`);
  line(`method:         ${options.method}`);
  if (options.header.length > 0) {
    line(`headers:        ${options.header.map((h) => `${h.name}=${h.value}`).join(' ')}`);
  }
  line(
    `service config: ${source ?? "none (neither --config nor the registry gives one): grpc-lb's round robin"}`,
  );
  line(`policy:         ${explanation.policy}`);
  if (explanation.route === null) {
    line(
      `route:          none of the ${explanation.routes} routes matches: the call goes to every endpoint, round robin`,
    );
  } else if (explanation.route !== undefined) {
    line(
      `route:          "${explanation.route.name}" (route ${explanation.route.index + 1} of ${explanation.routes}, the first that matches)`,
    );
  }
  if (explanation.split !== undefined) {
    line('split:');
    writeTable(
      io,
      [
        { heading: 'SUBSET' },
        { heading: 'WEIGHT', align: 'right' },
        { heading: 'SHARE', align: 'right' },
        { heading: 'POLICY' },
        { heading: 'LABELS' },
        { heading: 'ENDPOINTS' },
      ],
      explanation.split.map((s) => [
        s.subset,
        String(s.weight),
        `${s.share}%`,
        s.policy,
        labelText(s.labels),
        s.endpoints.length === 0 ? '(empty)' : s.endpoints.join(','),
      ]),
    );
    const empty = explanation.split.filter((x) => x.endpoints.length === 0);
    // With "redistribute", a route whose every subset is empty fails its calls.
    const allEmpty =
      empty.length === explanation.split.length && explanation.onEmptySubset === 'redistribute';
    if (allEmpty) {
      line(
        `every subset of the route is empty (${empty.map((s) => `"${s.subset}"`).join(', ')}): its calls fail with UNAVAILABLE`,
      );
    }
    for (const s of allEmpty ? [] : empty) {
      line(
        explanation.onEmptySubset === 'fail'
          ? `subset "${s.subset}" is empty: with onEmptySubset "fail" its ${s.share}% of the calls fail with UNAVAILABLE`
          : `subset "${s.subset}" is empty: with onEmptySubset "redistribute" its ${s.share}% goes to the route's other subsets that can take calls`,
      );
    }
  }
  if (explanation.candidates !== undefined) {
    line(
      explanation.candidates.length === 0
        ? 'candidates:     none (the target resolves to no endpoints)'
        : `candidates:     every endpoint (${explanation.candidates.length}): ${explanation.candidates.join(', ')}`,
    );
  }
  if (shown.note !== undefined) line(`note:           ${oneLine(shown.note)}`);
}

async function run(context: CommandContext, target: string, options: ExplainOptions) {
  if (!METHOD.test(options.method)) {
    throw new UsageError(
      `--method "${options.method}" is not a full method name such as /pkg.Service/Method`,
      EXPLAIN,
    );
  }
  let shown: Shown | undefined;
  await resolveTarget(context, target, options, EXPLAIN, (s) => {
    shown = s;
  });
  const resolution = shown!;
  const source = await followed(context, options, resolution);
  const explanation = explain(source, options.method, options.header, resolution.endpoints);
  if (options.json === true) {
    writeJson(context.io, {
      target: redactSecrets(target),
      method: options.method,
      headers: options.header.map((h) => ({ name: h.name, value: h.value })),
      serviceConfigSource: source.source ?? null,
      ...explanation,
      ...(explanation.split === undefined
        ? {}
        : {
            split: explanation.split.map((s) => ({ ...s, empty: s.endpoints.length === 0 })),
          }),
    });
  } else {
    writeExplanation(context, target, options, source.source, resolution, explanation);
  }
}

/** `grpc-lb explain <target> --method …`: which route, subset and share a call would get. */
export const explainCommand: CliCommand = {
  name: 'explain',
  create: (context) =>
    addResolveOptions(
      new Command('explain')
        .description(
          "Say which route, subsets and shares a call would get under the channel's service config, and which endpoints each subset holds, without connecting to them",
        )
        .argument(
          '<target>',
          'a grpc-lb target: static:, composite:, dns+lb:, k8s:, etcd:, consul:…',
        )
        .requiredOption('--method <name>', 'the full method name of the call, /pkg.Service/Method')
        .option('--header <name=value>', 'a request header of the call (repeatable)', header, [])
        .option(
          '--config <file>',
          'the service config JSON, as in grpc.service_config (- for stdin; default: the one the registry holds for the target)',
        )
        .option('--json', 'print JSON instead of text'),
    )
      .addHelpText(
        'after',
        `
The target is resolved as 'grpc-lb endpoints' resolves it; nothing connects to the endpoints. The
service config is --config's, else the document the registry holds for the target (?config=),
else none (round robin). It is checked as a channel checks it. For grpc-lb.traffic_split, the
first route that matches the method and headers is shown with each subset's weight, share and
endpoints (by labels), an empty subset named; for any other policy every endpoint is a candidate.

Exit status: 0 explained, 1 the registry could not be read within --timeout or the service config
is not usable, 2 a usage error (a malformed target, no --method, a bad --header).

Examples:
  grpc-lb explain 'static:///127.0.0.2:50051;version=v1,127.0.0.3:50051;version=v2' \\
    --config split.json --method /helloworld.Greeter/SayHello --header x-user=beta
  grpc-lb explain 'etcd:///services/hello?config=services/hello.config' --method /pkg.Svc/Get --json
`,
      )
      .action(async (target: string, _options: unknown, command: Command) => {
        await run(context, target, command.opts<ExplainOptions>());
      }),
};
