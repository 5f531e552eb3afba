import path from 'node:path';
import type { ErrorCode, JobDocument, JobInput, JobWarning, Results, Usage } from './types.js';

/** The document of a job that is known but has not started: what `submit` prints and the store creates. */
export function newJobDocument(input: JobInput, now = new Date().toISOString()): JobDocument {
  return {
    id: input.jobId,
    status: 'queued',
    fileType: null,
    file: { name: input.file.name ?? path.basename(input.file.path) },
    user: input.user ?? null,
    priority: input.priority ?? 0,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
    steps: {},
    results: {},
    error: null,
    ...(input.instructions && { instructions: input.instructions }),
    ...(input.profile && { profile: input.profile }),
  };
}

/** The job's AI spending: the usage of its analysis, transcript and summary added up; undefined when none. */
export function totalUsage(results: Results): Usage | undefined {
  const parts = [results.analysis?.usage, results.transcript?.usage, results.summary?.usage].filter(
    (u): u is Usage => u !== undefined,
  );
  if (parts.length === 0) return undefined;
  const sum: Usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 0, latencyMs: 0 };
  for (const u of parts) for (const k of Object.keys(sum) as (keyof Usage)[]) sum[k] += u[k];
  return sum;
}

/**
 * Failures the file itself decides: the same bytes fail the same way whatever the configuration, so a retry cannot
 * change them. TOO_LARGE and TIMEOUT are not here: an operator may raise the limit and retry.
 */
export const FILE_DECIDED_CODES: readonly ErrorCode[] = [
  'UNSUPPORTED_TYPE',
  'CORRUPT_FILE',
  'ENCRYPTED',
  'EMPTY_FILE',
  'CHECKSUM_MISMATCH',
];

/** Why POST /jobs/:id/retry would be refused for this job, or null when a retry may change its outcome. */
export function retryRefusal(doc: JobDocument): string | null {
  if (!['failed', 'completed_with_errors', 'cancelled'].includes(doc.status))
    return `job ${doc.id} is ${doc.status}: only failed, partly failed or cancelled jobs can be retried`;
  if (doc.status === 'cancelled') return null;
  const failures = Object.values(doc.steps).flatMap((s) => (s?.status === 'failed' && s.error ? [s.error] : []));
  if (failures.length === 0 && doc.error) failures.push(doc.error);
  if (failures.length === 0 || failures.some((e) => !(FILE_DECIDED_CODES as readonly string[]).includes(e.code)))
    return null;
  const codes = [...new Set(failures.map((e) => e.code))].join(', ');
  return `job ${doc.id} failed with ${codes}: the same file would fail the same way, so there is nothing to retry`;
}

/** What a job's results say is wrong with its file, though the steps could use it: a file cut short (TRUNCATED). */
export function warningsOf(results: Results): JobWarning[] {
  const meta = results.metadata;
  const declared = meta?.declaredDurationSec;
  if (declared === undefined || typeof meta?.durationSec !== 'number') return [];
  const seconds = (n: number): string => `${Math.round(n * 10) / 10} s`;
  return [
    {
      code: 'TRUNCATED',
      message:
        `the file is cut short: its header declares ${seconds(declared)}, only ${seconds(meta.durationSec)} can be ` +
        'read; the steps used what is there',
    },
  ];
}
