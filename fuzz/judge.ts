/**
 * What counts as a clean outcome of a fuzz case: a job that ended (completed, completed_with_errors or failed) with
 * every error code, of the job and of each step, a known one other than INTERNAL, and no step left running. Bad
 * input is expected to fail; it must fail with a name.
 */
import { ERROR_CODES, type JobDocument, type StepErrorCode } from '../src/lib/types.js';

export type FindingKind = 'CRASH' | 'HANG' | 'INTERNAL' | 'BAD_DOCUMENT';

export interface Judgement {
  /** `completed`, `completed_with_errors` or `failed:<code>`. */
  outcome: string;
  /** `<step>:<code>` of each failed step, for the summary. */
  stepErrors: string[];
  /** Milliseconds of each step that ran (of its last attempt), to find the slow ones. */
  stepMs: Record<string, number>;
  finding: { kind: FindingKind; detail: string } | null;
}

const ENDED = ['completed', 'completed_with_errors', 'failed'];

export function judge(doc: JobDocument): Judgement {
  const outcome = doc.status === 'failed' ? `failed:${doc.error?.code ?? 'NONE'}` : doc.status;
  const stepErrors: string[] = [];
  const stepMs: Record<string, number> = {};
  const problems: { kind: FindingKind; detail: string }[] = [];
  const check = (where: string, code: StepErrorCode | undefined, message: string | undefined): void => {
    if (code === 'INTERNAL') problems.push({ kind: 'INTERNAL', detail: `${where}: ${message ?? ''}` });
    else if (code === undefined || !(ERROR_CODES as readonly string[]).includes(code))
      problems.push({ kind: 'BAD_DOCUMENT', detail: `${where}: unknown error code ${String(code)}` });
  };

  if (!ENDED.includes(doc.status)) problems.push({ kind: 'BAD_DOCUMENT', detail: `status ${doc.status}` });
  if (doc.status === 'failed' && !doc.error) problems.push({ kind: 'BAD_DOCUMENT', detail: 'failed with no error' });
  if (doc.error) check(`job (step ${doc.error.step ?? '-'})`, doc.error.code, doc.error.message);
  for (const [step, record] of Object.entries(doc.steps)) {
    if (record.durationMs !== undefined) stepMs[step] = record.durationMs;
    if (record.status === 'running' || record.status === 'pending')
      problems.push({ kind: 'BAD_DOCUMENT', detail: `${step} left ${record.status} in a ${doc.status} job` });
    if (record.status === 'failed') {
      stepErrors.push(`${step}:${record.error?.code ?? 'NONE'}`);
      check(step, record.error?.code, record.error?.message);
      // No time limit in the code is under a second: a TIMEOUT sooner is a limit that went wrong (a timer overflow).
      if (record.error?.code === 'TIMEOUT' && (record.durationMs ?? Infinity) < 1000)
        problems.push({ kind: 'BAD_DOCUMENT', detail: `${step}: TIMEOUT after ${record.durationMs} ms` });
    }
  }
  // INTERNAL first: it is the one that names a bug in a step.
  const finding = problems.find((p) => p.kind === 'INTERNAL') ?? problems[0] ?? null;
  return { outcome, stepErrors, stepMs, finding };
}
