/** Typed errors of the harness; `code` says what went wrong, the message says to whom. */

export type BackendStartErrorCode =
  /** Another process holds host:port (startBackends retries these with a new port). */
  | 'EADDRINUSE'
  /** The listener failed for another reason (see `message`). */
  | 'LISTEN_FAILED'
  /** The child exited before it reported "listening". */
  | 'EXITED_BEFORE_READY'
  /** The child did not report "listening" before the deadline. */
  | 'START_TIMEOUT'
  /** The child process could not be spawned at all. */
  | 'SPAWN_FAILED';

export class BackendStartError extends Error {
  readonly code: BackendStartErrorCode;
  /** Tail of the child's stderr, often the actual reason. */
  readonly stderr: string;

  constructor(
    code: BackendStartErrorCode,
    message: string,
    stderr: string,
    options?: ErrorOptions,
  ) {
    super(stderr === '' ? message : `${message}\n--- child stderr ---\n${stderr}`, options);
    this.name = 'BackendStartError';
    this.code = code;
    this.stderr = stderr;
  }
}

export type BackendControlErrorCode =
  /** The backend process has exited; restart() it first. */
  | 'NOT_RUNNING'
  /** The backend is frozen (SIGSTOP) and cannot answer; thaw() it first. */
  | 'FROZEN'
  /** The backend did not answer or exit in time. */
  | 'TIMEOUT'
  /** The backend answered the command with an error, or the IPC send failed. */
  | 'FAILED';

export class BackendControlError extends Error {
  readonly code: BackendControlErrorCode;

  constructor(code: BackendControlErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BackendControlError';
    this.code = code;
  }
}
