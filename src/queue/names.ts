/**
 * The message contract on Redis (documented in docs/messages.md): queue names, the JOB_CREATED job name and the
 * deterministic task ids that make a re-run step find the task it already enqueued.
 */
import type { AnyStepName } from '../lib/types.js';

export { JOB_ID_PATTERN } from '../lib/job-input.js';

/** The orchestrator's queue: one BullMQ job per media job, named JOB_CREATED, with the job id as BullMQ job id. */
export const JOBS_QUEUE = 'jobs';
export const JOB_CREATED = 'JOB_CREATED';

/** `<jobId>-<step>-<generation>`: the same step of the same job run (generation) is always the same task. */
export function taskId(jobId: string, step: AnyStepName, generation = 0): string {
  return `${jobId}-${step}-${generation}`;
}

export const cancelChannel = (prefix: string): string => `${prefix}:media-orchestrator:cancel`;
export const cancelKey = (prefix: string, jobId: string): string => `${prefix}:media-orchestrator:cancelled:${jobId}`;

/** Held by the orchestrator that sweeps this round (see sweeper.ts): one sweep at a time per installation. */
export const sweepLockKey = (prefix: string): string => `${prefix}:media-orchestrator:sweep-lock`;
/** How many times the sweep has resumed a job's stopped run. */
export const resumesKey = (prefix: string, jobId: string): string => `${prefix}:media-orchestrator:resumes:${jobId}`;
/** Why a job's last run stopped without ending the job (an encoded failure), for the sweep that gives up on it. */
export const stoppedKey = (prefix: string, jobId: string): string => `${prefix}:media-orchestrator:stopped:${jobId}`;
/** Held by the orchestrator running a job (see run-lock.ts): one run of a job at a time, across processes. */
export const runLockKey = (prefix: string, jobId: string): string => `${prefix}:media-orchestrator:run:${jobId}`;
