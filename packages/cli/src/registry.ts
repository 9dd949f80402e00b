import type { CliCommand } from './command';
import { endpointsCommand } from './commands/endpoints';
import { explainCommand } from './commands/explain';
import { istioCommand } from './commands/istio';

/** Every top-level command of `grpc-lb`, in the order `grpc-lb --help` lists them. */
export const COMMANDS: readonly CliCommand[] = [endpointsCommand, explainCommand, istioCommand];
