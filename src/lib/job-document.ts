import path from 'node:path';
import type { JobDocument, JobInput, Results, Usage } from './types.js';

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
