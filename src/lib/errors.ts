import { isDiskFull } from './transient.js';
import type { FileInfo, FileType, StepErrorCode } from './types.js';

/**
 * What a step learnt about the file before it failed: validate knows a password-protected PDF is a PDF, its size and
 * hash, even though it refuses it. Carried with the failure so that the failed job still says what the file is.
 */
export interface Learnt {
  fileType: FileType;
  fileInfo: FileInfo;
}

/**
 * A failure with a code a user can act on. `retryable: false` (the default) means bad input: retrying cannot help,
 * so the step fails at once, whichever layer runs it. Transient trouble throws plain errors instead.
 */
export class MediaError extends Error {
  readonly code: StepErrorCode;
  readonly retryable: boolean;
  /** Stopped by a signal from outside (a shutdown signalling the whole process group), not by the input. */
  readonly interrupted: boolean;
  readonly learnt?: Learnt;

  constructor(
    code: StepErrorCode,
    message: string,
    options: { cause?: unknown; retryable?: boolean; interrupted?: boolean; learnt?: Learnt } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'MediaError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.interrupted = options.interrupted ?? false;
    if (options.learnt) this.learnt = options.learnt;
  }
}

export function isMediaError(err: unknown): err is MediaError {
  return err instanceof MediaError;
}

/**
 * A step's failure as a value: the `failed` variant of StepOutcome (src/nodes/deps.ts), the same from the step's
 * execution to the job document. It crosses a step thread as the thread's reply and a task queue as the task's BullMQ
 * return value; whatever catches a thrown error around a step turns it into this with `failureOf`.
 */
export interface FailedOutcome {
  status: 'failed';
  code: StepErrorCode;
  message: string;
  /** Another attempt can help (transient trouble); absent or false for bad input and cancellation. */
  retryable?: boolean;
  /** Stopped by a signal from outside (a shutdown), not by the input. */
  interrupted?: boolean;
  learnt?: Learnt;
}

/**
 * The one place that decides what a thrown error means for a step: its code, its message, and whether another
 * attempt can help. A MediaError says so itself; a cancelled step never retries; anything else (a bug, a lost
 * connection) is retried, because nothing says the input is at fault.
 */
export function failureOf(err: unknown): FailedOutcome {
  const { code, message } = describeError(err);
  const media = isMediaError(err) ? err : null;
  return {
    status: 'failed',
    code,
    message,
    retryable: code !== 'CANCELLED' && (media ? media.retryable : true),
    ...(media?.interrupted && { interrupted: true }),
    ...(media?.learnt && { learnt: media.learnt }),
  };
}

/**
 * The system refused to start a child process for want of memory or of process slots (`spawn ENOMEM`, `spawn
 * EAGAIN`): the machine is overloaded for the moment, not the file bad nor the code wrong.
 */
function isSpawnRefused(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code, syscall } = err as NodeJS.ErrnoException;
  return (code === 'ENOMEM' || code === 'EAGAIN') && typeof syscall === 'string' && syscall.startsWith('spawn');
}

/** Any thrown value as a code and a message that never includes a stack. */
export function describeError(err: unknown): { code: StepErrorCode; message: string } {
  if (isMediaError(err)) return { code: err.code, message: err.message };
  if (err instanceof Error && err.name === 'AbortError') return { code: 'CANCELLED', message: 'the job was cancelled' };
  const message = err instanceof Error ? err.message : String(err);
  // Not a bug, and not the file's fault: another attempt, later, may find room.
  if (isDiskFull(err)) return { code: 'RESOURCE_LIMIT', message: `the disk is full: ${message}` };
  if (isSpawnRefused(err)) {
    return {
      code: 'RESOURCE_LIMIT',
      message: `the machine could not start a process (memory or process limit): ${message}`,
    };
  }
  return { code: 'INTERNAL', message: message || 'unexpected error' };
}
