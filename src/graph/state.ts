/**
 * The graph's state. Input keys are the JOB_CREATED contract; the rest is small JSON written by the steps. Keys that
 * parallel branches write (steps, results) have merge reducers.
 */
import { Annotation } from '@langchain/langgraph';
import type { Instructions } from '../lib/instructions.js';
import type {
  FileInfo,
  FileType,
  JobError,
  JobInput,
  JobStatus,
  Results,
  RetryOptions,
  StepRecords,
} from '../lib/types.js';

const keep =
  <T>(fallback: T) =>
  () =>
    fallback;

export const JobInputAnnotation = Annotation.Root({
  jobId: Annotation<string>,
  file: Annotation<JobInput['file']>,
  user: Annotation<JobInput['user']>,
  priority: Annotation<number | undefined>,
  notifyUrl: Annotation<string | undefined>,
  /** What the producer asked for this job, and the preset it named (lib/instructions.ts). */
  instructions: Annotation<Instructions | undefined>,
  profile: Annotation<string | undefined>,
  /** Set by the service for a retry (never from a producer's message); resumed runs find it in the checkpoint. */
  retry: Annotation<RetryOptions | undefined>,
});

export const JobStateAnnotation = Annotation.Root({
  ...JobInputAnnotation.spec,
  fileInfo: Annotation<FileInfo | null>({ reducer: (a, b) => b ?? a, default: keep(null) }),
  fileType: Annotation<FileType | null>({ reducer: (a, b) => b ?? a, default: keep(null) }),
  steps: Annotation<StepRecords>({ reducer: (a, b) => ({ ...a, ...b }), default: () => ({}) }),
  results: Annotation<Results>({ reducer: (a, b) => ({ ...a, ...b }), default: () => ({}) }),
  /** The first required step to fail; it decides the job's error. */
  error: Annotation<JobError | null>({ reducer: (a, b) => a ?? b, default: keep(null) }),
  status: Annotation<JobStatus>({ reducer: (a, b) => b ?? a, default: keep<JobStatus>('running') }),
});

export type JobState = typeof JobStateAnnotation.State;
export type JobUpdate = typeof JobStateAnnotation.Update;
