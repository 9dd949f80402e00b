/**
 * Command-line options of `npm run bench -- …`, parsed by a pure function; every rejection names
 * the flag.
 */

export interface BenchOptions {
  quick: boolean;
  /** Interleaved closed-loop rounds (every scenario once per round). */
  rounds: number;
  /**
   * A round in which some run saw more than this many cores of other load is repeated (up to
   * `extraRounds` times in all) and left out of the medians; null: keep every round.
   */
  quietThreshold: number | null;
  extraRounds: number;
  /** Open-loop rounds at `rate` (0: none). */
  openRounds: number;
  /** Measured time of one run, ms. */
  durationMs: number;
  /** Unrecorded warm-up at the start of each run, ms. */
  warmupMs: number;
  /** Closed loop: calls in flight, the same for every scenario. */
  concurrency: number;
  /** Open loop: offered calls per second. */
  rate: number;
  /** Rounds of the failover scenarios (every fault × policy once per round); 0: none. */
  failoverRounds: number;
  /** Rounds of the convergence scenarios (add an endpoint, remove it); 0: none. */
  convergenceRounds: number;
  /** Rounds of the ghz calibration (ghz and our generator, `direct`); 0: none. */
  ghzRounds: number;
  /** Rounds of the startup-skew scenarios (every client × case once per round); 0: none. */
  startupRounds: number;
  /** Rounds of the metrics-cost scenarios (metrics ON and OFF once per round); 0: none. */
  metricsRounds: number;
  /** Backends of the main set. */
  backends: number;
  /** Backends of the evenness set, and its call count. */
  evennessBackends: number;
  evennessCalls: number;
  /** Client channels of the L4 evenness case. */
  l4Channels: number;
  /** Only these scenarios (by name), when given. */
  scenarios: string[] | null;
  proxies: boolean;
  micro: boolean;
  /** Run the fleet simulation (subsetting and zone-aware routing, 1,000 clients × 1,000 backends). */
  fleet: boolean;
  /** Write a V8 CPU profile of every load worker. */
  cpuProf: boolean;
  /** Where the JSON, SVG (and, for a full run, RESULTS.md's data) go; null = the default. */
  outDir: string | null;
  /** Re-render the SVG and RESULTS.md from this stored JSON instead of running. */
  reportOnly: string | null;
  /** Date in file names, YYYY-MM-DD; null = today (UTC). */
  date: string | null;
  help: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = `usage: npm run bench -- [options]

  --quick                 every scenario briefly (CI smoke, < 3 min); prints JSON last
  --rounds N              interleaved closed-loop rounds (default 5; quick 2)
  --open-rounds N         open-loop rounds at --rate, 0 for none (default 3; quick 1)
  --quiet-threshold C     a round where other processes used more than C cores is disturbed:
                          repeated and left out of medians (default 0.25; 'off' keeps all)
  --extra-rounds N        at most N repeated rounds per phase (default = rounds; quick 0)
  --duration S            measured seconds per run (default 5; quick 1.5)
  --warmup S              unrecorded warm-up seconds per run (default 1; quick 0.5)
  --concurrency N         closed loop: calls in flight, same for every scenario (default 50)
  --rate N                open loop: calls per second offered (default 1000)
  --failover-rounds N     rounds of the failover scenarios, 0 for none (default 3; quick 1)
  --convergence-rounds N  registry add/remove rounds of the convergence scenarios (dns+lb:, etcd:,
                          k8s:, consul:), 0 for none (default 10; quick 2)
  --ghz-rounds N          rounds of the ghz calibration (ghz vs our load generator on the direct
                          scenario's one backend), 0 for none (default 5; quick 2)
  --no-ghz                skip the ghz calibration (same as --ghz-rounds 0)
  --startup-rounds N      rounds of the startup-skew scenarios (the first 100 calls of a new
                          channel), 0 for none (default 5; quick 1)
  --metrics-rounds N      rounds of the metrics-cost scenarios (grpc-lb round robin with and
                          without OpenTelemetry metrics), 0 for none (default 5; quick 1)
  --backends N            backends in the main set (default 3: labelled v1, v2, v3)
  --evenness-backends N   backends in the evenness set (default 10)
  --evenness-calls N      calls of the evenness scenario (default 100000; quick 10000)
  --l4-channels N         client channels of the L4 evenness case (default 4)
  --scenarios a,b         only these scenarios (names as in the report); for the failover group:
                          failover (all of it), failover-<fault> (sigkill, hang, errors-50,
                          slow-10x, errors-100: every policy run on it) or
                          failover-<fault>:<policy> (one run);
                          convergence (every resolver), convergence-dns, convergence-etcd,
                          convergence-k8s or convergence-consul;
                          ghz-calibration; startup-skew (the first 100 calls of a new channel);
                          metrics-cost (throughput with and without metrics);
                          fleet (subsetting and zone-aware routing simulated, no sockets)
  --no-proxies            skip nginx and HAProxy (and their installation)
  --no-micro              skip the in-process pick/update micro benchmarks
  --no-fleet              skip the fleet simulation (subsetting, zone-aware, 1,000 × 1,000)
  --cpu-prof              V8 CPU profile of every load worker (bench/results/tmp/profiles)
  --out DIR               output directory (default bench/results; quick: bench/results/tmp)
  --date YYYY-MM-DD       date used in output file names (default today, UTC)
  --report-only FILE      no run: rewrite FILE's .svg (and RESULTS.md for a full run) from it
  --help                  this text
`;

const FULL_DEFAULTS = {
  rounds: 5,
  openRounds: 3,
  durationMs: 5000,
  warmupMs: 1000,
  evenness: 100_000,
  failoverRounds: 3,
  convergenceRounds: 10,
  ghzRounds: 5,
  startupRounds: 5,
  metricsRounds: 5,
};
const QUICK_DEFAULTS = {
  rounds: 2,
  openRounds: 1,
  durationMs: 1500,
  warmupMs: 500,
  evenness: 10_000,
  failoverRounds: 1,
  convergenceRounds: 2,
  ghzRounds: 2,
  startupRounds: 1,
  metricsRounds: 1,
};

function integer(flag: string, text: string | undefined, min: number): number {
  if (text === undefined || !/^\d+$/.test(text)) {
    throw new UsageError(`${flag}: expected an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  }
  const value = Number(text);
  if (value < min) throw new UsageError(`${flag}: ${value} is below the minimum ${min}`);
  return value;
}

function seconds(flag: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(
      `${flag}: expected a positive number of seconds, got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(value * 1000);
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const defaults = quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const options: BenchOptions = {
    quick,
    rounds: defaults.rounds,
    quietThreshold: 0.25,
    extraRounds: -1,
    openRounds: defaults.openRounds,
    durationMs: defaults.durationMs,
    warmupMs: defaults.warmupMs,
    concurrency: 50,
    rate: 1000,
    failoverRounds: defaults.failoverRounds,
    convergenceRounds: defaults.convergenceRounds,
    ghzRounds: defaults.ghzRounds,
    startupRounds: defaults.startupRounds,
    metricsRounds: defaults.metricsRounds,
    backends: 3,
    evennessBackends: 10,
    evennessCalls: defaults.evenness,
    l4Channels: 4,
    scenarios: null,
    proxies: true,
    micro: true,
    fleet: true,
    cpuProf: false,
    outDir: null,
    reportOnly: null,
    date: null,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--quick':
        break;
      case '--rounds':
        options.rounds = integer(flag, value(), 1);
        break;
      case '--quiet-threshold': {
        const text = value();
        if (text === 'off') {
          options.quietThreshold = null;
        } else {
          const cores = Number(text);
          if (text === undefined || text.trim() === '' || !(cores >= 0)) {
            throw new UsageError(
              `--quiet-threshold: expected a number of cores or 'off', got ${JSON.stringify(text)}`,
            );
          }
          options.quietThreshold = cores;
        }
        break;
      }
      case '--extra-rounds':
        options.extraRounds = integer(flag, value(), 0);
        break;
      case '--open-rounds':
        options.openRounds = integer(flag, value(), 0);
        break;
      case '--duration':
        options.durationMs = seconds(flag, value());
        break;
      case '--warmup': {
        const text = value();
        options.warmupMs = text === '0' ? 0 : seconds(flag, text);
        break;
      }
      case '--concurrency':
        options.concurrency = integer(flag, value(), 1);
        break;
      case '--rate':
        options.rate = integer(flag, value(), 1);
        break;
      case '--failover-rounds':
        options.failoverRounds = integer(flag, value(), 0);
        break;
      case '--convergence-rounds':
        options.convergenceRounds = integer(flag, value(), 0);
        break;
      case '--ghz-rounds':
        options.ghzRounds = integer(flag, value(), 0);
        break;
      case '--no-ghz':
        options.ghzRounds = 0;
        break;
      case '--startup-rounds':
        options.startupRounds = integer(flag, value(), 0);
        break;
      case '--metrics-rounds':
        options.metricsRounds = integer(flag, value(), 0);
        break;
      case '--backends':
        options.backends = integer(flag, value(), 1);
        break;
      case '--evenness-backends':
        options.evennessBackends = integer(flag, value(), 2);
        break;
      case '--evenness-calls':
        options.evennessCalls = integer(flag, value(), 1);
        break;
      case '--l4-channels':
        options.l4Channels = integer(flag, value(), 1);
        break;
      case '--scenarios': {
        const text = value();
        const names = (text ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        if (names.length === 0)
          throw new UsageError('--scenarios: expected a comma-separated list');
        options.scenarios = names;
        break;
      }
      case '--no-proxies':
        options.proxies = false;
        break;
      case '--no-micro':
        options.micro = false;
        break;
      case '--no-fleet':
        options.fleet = false;
        break;
      case '--cpu-prof':
        options.cpuProf = true;
        break;
      case '--out': {
        const text = value();
        if (!text) throw new UsageError('--out: expected a directory');
        options.outDir = text;
        break;
      }
      case '--report-only': {
        const text = value();
        if (!text) throw new UsageError('--report-only: expected a results JSON file');
        options.reportOnly = text;
        break;
      }
      case '--date': {
        const text = value();
        if (text === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(text)) {
          throw new UsageError(`--date: expected YYYY-MM-DD, got ${JSON.stringify(text)}`);
        }
        options.date = text;
        break;
      }
      case '--help':
      case '-h':
        options.help = true;
        break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(arg)}\n\n${USAGE}`);
    }
  }
  if (options.extraRounds < 0) options.extraRounds = quick ? 0 : options.rounds;
  if (options.backends + 1 > 254 || options.evennessBackends + 1 > 254) {
    throw new UsageError('--backends/--evenness-backends: at most 253 (127.0.0.2 … 127.0.0.254)');
  }
  return options;
}
