/**
 * A balancer's subsetting (`subsetting.ts`): which of the resolver's
 * endpoints get a child, and so a connection. The random seed is drawn once
 * per balancer (one per channel) and kept for its life, so successive
 * resolver updates rank the endpoints the same way. The deterministic
 * mode's client id is looked up when the config changes; without one the
 * balancer says so once and subsets at random.
 *
 * Members are chosen by the resolver's list alone: a member that fails, is
 * ejected or is unhealthy stays a member (its calls go to the others), as in
 * gRFC A68 and Envoy. Replacing it would move connections on every flap and
 * pile the load of a broken endpoint onto whichever endpoint ranks next.
 */
import type { Logger } from '../logger';
import {
  CLIENT_ID_ENV,
  deterministicSubset,
  lookupClientId,
  randomSubset,
  randomSubsetSeed,
  type SubsetSeed,
  type SubsettingConfig,
} from '../subsetting';

export type Environment = Readonly<Record<string, string | undefined>>;

export class EndpointSubsetting {
  private readonly seed: SubsetSeed;
  private config: SubsettingConfig | undefined;
  /** The config last applied, as text: an equal config parsed again is not applied again. */
  private configText = '';
  /** The deterministic mode's client id; undefined: random. */
  private clientId: number | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly env: Environment = process.env,
    seed: SubsetSeed = randomSubsetSeed(),
  ) {
    this.seed = seed;
  }

  /**
   * The keys of the endpoints to give a child, or undefined for all of them
   * (no subsetting, or no more endpoints than the subset size).
   */
  select<E>(
    endpoints: readonly E[],
    keyOf: (endpoint: E) => string,
    config: SubsettingConfig | undefined,
    target: string,
  ): ReadonlySet<string> | undefined {
    const text = config === undefined ? '' : JSON.stringify(config);
    if (text !== this.configText) this.configure(config, text, target);
    if (config === undefined || endpoints.length <= config.subsetSize) return undefined;
    const keys = endpoints.map(keyOf);
    const chosen =
      this.clientId === undefined
        ? randomSubset(keys, config.subsetSize, this.seed)
        : deterministicSubset(keys, config.subsetSize, this.clientId);
    return new Set(chosen);
  }

  /** How the subset is chosen, for traces. */
  get describe(): string {
    if (!this.config) return 'no subsetting';
    return this.clientId === undefined
      ? `random subset of ${this.config.subsetSize}`
      : `deterministic subset of ${this.config.subsetSize}, client id ${this.clientId}`;
  }

  /** Looks the client id up once per config; without one, warns once and subsets at random. */
  private configure(config: SubsettingConfig | undefined, text: string, target: string): void {
    this.config = config;
    this.configText = text;
    this.clientId = undefined;
    if (config?.mode !== 'deterministic') return;
    const lookup = lookupClientId(config.clientId, this.env);
    if (lookup.ok) {
      this.clientId = lookup.id;
      return;
    }
    this.logger.warn(
      `${target}: deterministic subsetting needs a client id: ${lookup.problem}; ` +
        `subsetting at random instead (set "clientId" in the config or ${CLIENT_ID_ENV})`,
    );
  }
}
