/**
 * Exit codes of every `grpc-lb` command. Scripts branch on them, so they mean the same thing for
 * every command, present and future.
 */

/** The command did what was asked (warnings may still have been printed). */
export const EXIT_OK = 0;
/** The input cannot be used: a file that cannot be read, bad YAML, a resource that cannot be translated. */
export const EXIT_INPUT = 1;
/** The command line itself is wrong: an unknown command or option, a missing or ambiguous argument. */
export const EXIT_USAGE = 2;

/**
 * The command did what was asked, but what it checked is not well: `grpc-lb endpoints --probe`
 * found endpoints that cannot take calls (not READY, or not serving).
 */
export const EXIT_UNHEALTHY = 3;

export type ExitCode =
  typeof EXIT_OK | typeof EXIT_INPUT | typeof EXIT_USAGE | typeof EXIT_UNHEALTHY;
