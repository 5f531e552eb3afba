/**
 * finalize: the job's status from its step results, and the finished job handed to the job store. A failed required
 * step makes the job `failed`; a failed optional step makes it `completed_with_errors`.
 */
import type { JobError, JobStatus, StepRecords } from '../lib/types.js';
import type { FinishedJob, JobSink } from './deps.js';

export function jobStatus(steps: StepRecords, error: JobError | null): JobStatus {
  if (error) return error.code === 'CANCELLED' ? 'cancelled' : 'failed';
  return Object.values(steps).some((s) => s?.status === 'failed') ? 'completed_with_errors' : 'completed';
}

export async function finalize(job: Omit<FinishedJob, 'status'>, jobs: JobSink): Promise<{ status: JobStatus }> {
  const status = jobStatus(job.steps, job.error);
  await jobs.saveFinished({ ...job, status });
  return { status };
}
