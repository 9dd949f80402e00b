import { Command, Option } from 'commander';

import {
  IstioTranslationError,
  IstioYamlError,
  parseIstioYaml,
  translateIstio,
  type IstioResources,
  type IstioTranslation,
} from '@grpc-lb/istio';

import type { CliCommand, CommandContext } from '../command';
import { InputError, UsageError } from '../errors';
import { defaultHost, namedHosts } from '../hosts';
import { readInputFiles } from '../input-files';
import { oneLine, writeJson, writeWarnings } from '../output';

const TRANSLATE = 'grpc-lb istio translate';

interface TranslateOptions {
  readonly file: readonly string[];
  readonly host?: string;
  readonly namespace?: string;
  readonly json?: boolean;
}

function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The resources of every file, in order: VirtualServices and DestinationRules, and what was ignored. */
function parseFiles(files: readonly { name: string; text: string }[]): IstioResources {
  const all: IstioResources = { virtualServices: [], destinationRules: [], ignored: [] };
  for (const file of files) {
    let parsed: IstioResources;
    try {
      parsed = parseIstioYaml(file.text, file.name);
    } catch (error) {
      if (error instanceof IstioYamlError) throw new InputError(error.message, { cause: error });
      throw error;
    }
    all.virtualServices.push(...parsed.virtualServices);
    all.destinationRules.push(...parsed.destinationRules);
    all.ignored.push(...parsed.ignored);
  }
  return all;
}

async function translate(context: CommandContext, options: TranslateOptions): Promise<void> {
  const { io } = context;
  const files = await readInputFiles(io, options.file, TRANSLATE);
  const resources = parseFiles(files);
  if (resources.virtualServices.length === 0 && resources.destinationRules.length === 0) {
    const names = files.map((f) => f.name).join(', ');
    throw new InputError(`no VirtualService or DestinationRule (networking.istio.io) in ${names}`);
  }
  const host = options.host ?? defaultHost(resources, TRANSLATE, options.namespace);
  let translation: IstioTranslation;
  try {
    translation = translateIstio({
      host,
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
      virtualServices: resources.virtualServices,
      destinationRules: resources.destinationRules,
    });
  } catch (error) {
    if (!(error instanceof IstioTranslationError)) throw error;
    const asked =
      options.host !== undefined
        ? `--host ${options.host}`
        : options.namespace !== undefined
          ? `--namespace ${options.namespace}`
          : undefined;
    if (
      asked !== undefined &&
      (error.code === 'BAD_HOST' || error.code === 'NO_RESOURCE_FOR_HOST')
    ) {
      // The resources may be fine: the host asked for is not one of theirs.
      const named = namedHosts(resources);
      const hint = named.length > 0 ? ` (the resources name ${named.join(', ')})` : '';
      const problem = error.resource === '' ? error.problem : error.message;
      throw new UsageError(`${asked}: ${oneLine(problem)}${hint}`, TRANSLATE);
    }
    throw new InputError(error.message, { cause: error });
  }
  const ignored = resources.ignored.map(
    (what) => `ignored ${what}: not a VirtualService or DestinationRule`,
  );
  const warnings = [...ignored, ...translation.warnings];
  writeWarnings(io, warnings);
  if (options.json === true) {
    writeJson(
      io,
      {
        host,
        serviceConfig: translation.serviceConfig,
        warnings: warnings.map(oneLine),
        used: translation.used,
      },
      { compact: true },
    );
  } else {
    writeJson(io, translation.serviceConfig);
  }
}

function translateCommand(context: CommandContext): Command {
  return new Command('translate')
    .description(
      'Print the grpc-lb service config that Istio VirtualServices and DestinationRules describe for one host, and warn about every field that is not carried over',
    )
    .addOption(
      new Option('-f, --file <file>', 'a YAML or JSON file of resources, - for stdin (repeatable)')
        .argParser(collect)
        .makeOptionMandatory(),
    )
    .option(
      '--host <host>',
      'the host to translate for (default: the one host the resources share; required when they name several)',
    )
    .option(
      '-n, --namespace <namespace>',
      "the client's namespace: the namespace of a short --host, and of resources that name none",
    )
    .option('--json', 'print one JSON object on one line: {host, serviceConfig, warnings, used}')
    .addHelpText(
      'after',
      `
The service config goes to stdout (indented JSON, or one line with --json); each warning goes to
stderr as one line. Exit status: 0 translated (even with warnings), 1 a file cannot be read or a
resource cannot be used, 2 a usage error.

Examples:
  grpc-lb istio translate -f virtual-service.yaml -f destination-rule.yaml
  kubectl get virtualservice,destinationrule -n prod -o yaml | grpc-lb istio translate -f - --host hello2
`,
    )
    .action(async (_options: unknown, command: Command) => {
      await translate(context, command.opts<TranslateOptions>());
    });
}

/** `grpc-lb istio …`: Istio resources, read and translated. */
export const istioCommand: CliCommand = {
  name: 'istio',
  create: (context) =>
    new Command('istio')
      .description('Istio resources (VirtualService, DestinationRule) as a grpc-lb service config')
      .addCommand(translateCommand(context)),
};
