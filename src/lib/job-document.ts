import path from 'node:path';
import type { JobDocument, JobInput } from './types.js';

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
