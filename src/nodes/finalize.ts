/**
 * finalize: the job's status from its step results, and the finished job handed to the job store. A failed required
 * step makes the job `failed`; a failed optional step, or a damaged file (warningsOf), `completed_with_errors`.
 */
import type { ArtifactStore } from '../lib/artifacts.js';
import { displayName, MAX_INDEXED_CHARS, searchTextOf, type SearchText } from '../lib/search.js';
import { warningsOf } from '../lib/job-document.js';
import type { FinishedJob, JobError, JobStatus, Results, StepRecords } from '../lib/types.js';
import type { JobSink } from './deps.js';
import { TEXT_ARTIFACT } from './extract-text.js';
import { TRANSCRIPT_ARTIFACT } from './transcribe.js';

/** A failed optional step, or a file the steps could only partly use (warnings), is `completed_with_errors`. */
export function jobStatus(steps: StepRecords, error: JobError | null, results: Results = {}): JobStatus {
  if (error) return error.code === 'CANCELLED' ? 'cancelled' : 'failed';
  const failed = Object.values(steps).some((s) => s?.status === 'failed');
  return failed || warningsOf(results).length > 0 ? 'completed_with_errors' : 'completed';
}

/** Stores the finished job with its status: from its steps, unless a reviewer rejected it. */
export async function finalize(
  job: Omit<FinishedJob, 'status'>,
  jobs: JobSink,
  rejected = false,
): Promise<{ status: JobStatus }> {
  const status = rejected ? 'rejected' : jobStatus(job.steps, job.error, job.results);
  await jobs.saveFinished({ ...job, status });
  return { status };
}

/**
 * Indexes a finished job for search with the whole of its transcript and document text: saveFinished indexed it from
 * its document, which holds excerpts of them only. Jobs without such texts keep that index.
 */
export async function indexFullText(
  job: FinishedJob,
  search: { index(jobId: string, text: SearchText): Promise<void> },
  artifacts: ArtifactStore,
): Promise<void> {
  const names = [job.results.transcript && TRANSCRIPT_ARTIFACT, job.results.text && TEXT_ARTIFACT];
  const texts: string[] = [];
  for (const name of names) {
    // Bytes, not characters: enough for MAX_INDEXED_CHARS of any script.
    const text = name ? await artifacts.readHead(job.jobId, name, MAX_INDEXED_CHARS * 4) : null;
    if (text) texts.push(text);
  }
  if (texts.length === 0) return;
  await search.index(job.jobId, searchTextOf(displayName(job.file, job.fileInfo), job.results, texts));
}
