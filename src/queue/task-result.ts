/**
 * What a step task leaves in Redis, and how the orchestrator reads it back. A task that ran its step to an end, a
 * failure included (bad input, or transient trouble on its last attempt), has the step's result as its BullMQ return
 * value. Only what BullMQ failed itself (a task stalled too often), a task failed by an earlier release, and the
 * orchestrator's own JOB_CREATED failures have nothing but a failed reason: the text "CODE: message", then the learnt
 * line. Redis is outside this process: both are checked as they are read, never trusted.
 */
import { z } from 'zod';
import type { StepResult } from '../graph/dispatcher.js';
import type { FailedOutcome } from '../lib/errors.js';
import { ERROR_CODES, FILE_TYPES, PLUGIN_ERROR_CODE, type StepErrorCode } from '../lib/types.js';

/** A task's BullMQ return value: the step's result as the graph receives it. */
export type TaskResult = StepResult;

/** The longest message (or skip reason) a task result carries: a longer one is cut when written, refused when read. */
export const MAX_MESSAGE_CHARS = 16_384;
/** The longest learnt line a failed reason may end with. */
const MAX_LEARNT_CHARS = 4096;

const text = z.string().max(4096);
const FileInfoSchema = z.object({
  name: text,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  mime: text,
  ext: text,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
const FileTypeSchema = z.enum(FILE_TYPES);
const LearntSchema = z.object({ fileType: FileTypeSchema, fileInfo: FileInfoSchema });
/** A built-in code, or a plugin step's own (VIRUS_FOUND): the job document accepts nothing else. */
const CodeSchema = z.union([z.enum(ERROR_CODES), z.string().regex(PLUGIN_ERROR_CODE)]);

const OutcomeSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('succeeded'),
    // What the step found: its own shape per step, as the job's results hold it.
    results: z.record(z.string(), z.unknown()).optional(),
    fileInfo: FileInfoSchema.optional(),
    fileType: FileTypeSchema.optional(),
  }),
  z.object({
    status: z.literal('skipped'),
    reason: z.string().max(MAX_MESSAGE_CHARS),
    endsChain: z.boolean().optional(),
  }),
  z.object({
    status: z.literal('failed'),
    code: CodeSchema,
    message: z.string().max(MAX_MESSAGE_CHARS),
    retryable: z.boolean().optional(),
    learnt: LearntSchema.optional(),
  }),
]);

const TaskResultSchema = z.object({
  outcome: OutcomeSchema,
  attempts: z.number().int().min(1).max(1000),
  runId: z.number().int().nonnegative().optional(),
});

/**
 * A task's return value as read from Redis (a JSON string from the event stream, an object from the job): the step's
 * result with the fields a result has and nothing more, or, when it is not one (forged, cut short, too large), an
 * INTERNAL failure saying so rather than anything it claims.
 */
export function readTaskResult(value: unknown, onRefused?: (problem: string) => void): TaskResult {
  let data = value;
  if (typeof value === 'string') {
    try {
      data = JSON.parse(value) as unknown;
    } catch {
      data = undefined;
    }
  }
  const parsed = TaskResultSchema.safeParse(data);
  // Checked above: the code is a built-in one or has a plugin code's form.
  if (parsed.success) return parsed.data as TaskResult;
  const problem = parsed.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || 'value'}: ${i.message}`)
    .join('; ');
  onRefused?.(problem);
  return {
    outcome: {
      status: 'failed',
      code: 'INTERNAL',
      message: `the step's result read back from the queue is not a step result (${problem})`,
    },
    attempts: 1,
  };
}

/** The result a task returns when its step failed for good: what Redis keeps of the failure. */
export function finalFailure({ code, message, retryable, learnt }: FailedOutcome, attempts: number): TaskResult {
  const cut = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message;
  return {
    outcome: { status: 'failed', code, message: cut, ...(retryable && { retryable }), ...(learnt && { learnt }) },
    attempts,
  };
}

/** A line after the message: what the step learnt about the file before it failed (see Learnt). */
const LEARNT_LINE = '\n[learnt] ';

/** A failure as a failed reason's text ("CODE: message", then the learnt line): what BullMQ keeps of a thrown error. */
export function encodeFailure({ code, message, learnt }: Pick<FailedOutcome, 'code' | 'message' | 'learnt'>): string {
  return `${code}: ${message}${learnt ? `${LEARNT_LINE}${JSON.stringify(learnt)}` : ''}`;
}

/** A failed reason's text read back: its code when it has the form of one, else INTERNAL with the whole text. */
export function decodeFailure(reason: string | undefined): FailedOutcome {
  let rest = reason ?? '';
  let learnt: FailedOutcome['learnt'];
  const at = rest.lastIndexOf(LEARNT_LINE);
  if (at >= 0) {
    learnt = parseLearnt(rest.slice(at + LEARNT_LINE.length));
    if (learnt) rest = rest.slice(0, at);
  }
  const m = /^([A-Z][A-Z0-9_]*): ([\s\S]*)$/.exec(rest);
  if (m && CodeSchema.safeParse(m[1]).success)
    return { status: 'failed', code: m[1] as StepErrorCode, message: m[2]!, ...(learnt && { learnt }) };
  return { status: 'failed', code: 'INTERNAL', message: reason || 'the task failed' };
}

/** The learnt line, if it is one of the right shape. */
function parseLearnt(json: string): FailedOutcome['learnt'] {
  if (json.length > MAX_LEARNT_CHARS) return undefined;
  try {
    const parsed = LearntSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
