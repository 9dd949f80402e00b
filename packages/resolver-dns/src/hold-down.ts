/**
 * The negative-answer hold-down: once a name has had endpoints, an NXDOMAIN or an empty answer
 * empties the set only after `answers` negative answers in a row AND `ms` since the first of them
 * (whichever comes later). A single transient NXDOMAIN (a zone reloading, a secondary behind its
 * primary, a DNS update replacing records) then never empties the set, while a name that is
 * really gone is dropped within a few seconds.
 */
import { formatDuration } from './duration';

export interface HoldDownSettings {
  /** Negative answers in a row before a name counts as gone (1: the first one empties the set). */
  readonly holdDownAnswers: number;
  /** How long negative answers must have lasted, from the first one (0: no wait). */
  readonly holdDownMs: number;
}

export const DEFAULT_HOLD_DOWN: HoldDownSettings = { holdDownAnswers: 2, holdDownMs: 5_000 };

export const MAX_HOLD_DOWN_ANSWERS = 100;
export const MAX_HOLD_DOWN_MS = 24 * 3_600_000;

function wholeIn(value: unknown, min: number, max: number): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
    ? Math.round(value)
    : undefined;
}

/**
 * The hold-down fields of a settings object, each defaulted when absent or out of range
 * (`holdDownAnswers` 1–100, `holdDownMs` 0 ms–24 h).
 */
export function holdDownOf(settings: object): HoldDownSettings {
  const fields = settings as Partial<Record<keyof HoldDownSettings, unknown>>;
  return {
    holdDownAnswers:
      wholeIn(fields.holdDownAnswers, 1, MAX_HOLD_DOWN_ANSWERS) ??
      DEFAULT_HOLD_DOWN.holdDownAnswers,
    holdDownMs: wholeIn(fields.holdDownMs, 0, MAX_HOLD_DOWN_MS) ?? DEFAULT_HOLD_DOWN.holdDownMs,
  };
}

export type NegativeVerdict =
  | { readonly gone: true; readonly answers: number; readonly forMs: number }
  | {
      readonly gone: false;
      readonly answers: number;
      readonly forMs: number;
      /** Until the duration condition holds (0 when only answers are missing). */
      readonly remainingMs: number;
      /** One sentence for the error reported meanwhile. */
      readonly reason: string;
    };

/** Counts one name's run of negative answers. */
export class NegativeStreak {
  private answers = 0;
  private since = 0;

  constructor(private readonly settings: HoldDownSettings) {}

  /** A positive answer (or a fresh start): the run ends. */
  reset(): void {
    this.answers = 0;
  }

  /** A negative answer at `now`: is the name gone yet? */
  negative(now: number): NegativeVerdict {
    if (this.answers === 0) this.since = now;
    this.answers++;
    const forMs = now - this.since;
    const { holdDownAnswers, holdDownMs } = this.settings;
    if (this.answers >= holdDownAnswers && forMs >= holdDownMs) {
      return { gone: true, answers: this.answers, forMs };
    }
    return {
      gone: false,
      answers: this.answers,
      forMs,
      remainingMs: Math.max(0, holdDownMs - forMs),
      reason: `the last endpoints are kept until the name has been missing for ${holdDownAnswers} answers and ${formatDuration(holdDownMs)} (${this.answers} so far, over ${formatDuration(forMs)})`,
    };
  }
}
