/**
 * Runs one job on its LangGraph thread (thread_id = job id). A job with a checkpoint resumes with invoke(null):
 * passing the input again would start over from START. After the job is finished and stored, its checkpoints are
 * deleted: the job store keeps the result, so the checkpoint database does not grow with every job.
 */
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import type { FinishedJob } from '../nodes/index.js';
import {
  TERMINAL_STATUSES,
  type JobDocument,
  type JobInput,
  type RetryOptions,
  type StepRecords,
} from '../lib/types.js';
import type { JobGraph } from './graph.js';
import type { JobState } from './state.js';

/** Abort reasons: a cancelled job ends `cancelled`; a drained one (shutdown) keeps its checkpoint to resume later. */
export const CANCEL_REASON = 'cancel';
export const DRAIN_REASON = 'shutdown';

export interface RunnerStore {
  createOrGet(input: JobInput): Promise<JobDocument>;
  get(id: string): Promise<JobDocument | null>;
  markRunning(id: string): Promise<void>;
  saveFinished(job: FinishedJob): Promise<void>;
}

export class JobRunner {
  constructor(
    private readonly graph: JobGraph,
    private readonly checkpointer: BaseCheckpointSaver,
    private readonly store: RunnerStore,
  ) {}

  /** `retry`: the state of a re-run, from the service's own store (a resumed run finds it in its checkpoint). */
  async run(input: JobInput, opts: { signal?: AbortSignal; retry?: RetryOptions } = {}): Promise<JobDocument> {
    const known = await this.store.createOrGet(input);
    if (TERMINAL_STATUSES.includes(known.status)) {
      await this.compact(input.jobId);
      return known;
    }
    await this.store.markRunning(input.jobId);
    const config = { configurable: { thread_id: input.jobId }, durability: 'sync' as const, signal: opts.signal };
    const resume = await this.hasCheckpoint(input.jobId);
    try {
      await this.graph.invoke(resume ? null : { ...input, ...(opts.retry && { retry: opts.retry }) }, config);
    } catch (err) {
      if (opts.signal?.aborted && opts.signal.reason === CANCEL_REASON) return this.cancel(input);
      throw err;
    }
    await this.compact(input.jobId);
    return this.document(input.jobId);
  }

  /** Ends a job as `cancelled` (steps that were running are marked failed with CANCELLED) and drops its checkpoints. */
  async cancel(input: JobInput): Promise<JobDocument> {
    const doc = await this.store.createOrGet(input);
    if (!TERMINAL_STATUSES.includes(doc.status)) {
      // What the steps that finished learnt lives in the checkpoint, not yet in the document: keep it, so the job
      // shows its type and results, and a retry starts from them (validate is not run again for nothing).
      const learnt = await this.checkpointed(input.jobId);
      const error = { code: 'CANCELLED' as const, message: 'the job was cancelled', step: null };
      const steps: StepRecords = {};
      for (const [name, record] of Object.entries(doc.steps)) {
        steps[name as keyof StepRecords] =
          record.status === 'running' || record.status === 'pending'
            ? { ...record, status: 'failed', error: { ...error, step: name as keyof StepRecords } }
            : record;
      }
      await this.store.saveFinished({
        jobId: input.jobId,
        status: 'cancelled',
        fileType: learnt?.fileType ?? doc.fileType,
        file: input.file,
        fileInfo: learnt?.fileInfo ?? null,
        user: doc.user,
        steps,
        results: { ...doc.results, ...learnt?.results },
        error,
      });
    }
    await this.compact(input.jobId);
    return this.document(input.jobId);
  }

  /** The findings in the job's latest checkpoint, or null when it has none. */
  private async checkpointed(jobId: string): Promise<Pick<JobState, 'fileType' | 'fileInfo' | 'results'> | null> {
    const tuple = await this.checkpointer.getTuple({ configurable: { thread_id: jobId } });
    const values = tuple?.checkpoint.channel_values as Partial<JobState> | undefined;
    if (!values) return null;
    return { fileType: values.fileType ?? null, fileInfo: values.fileInfo ?? null, results: values.results ?? {} };
  }

  /** True when the job has checkpoints to resume from. */
  async hasCheckpoint(jobId: string): Promise<boolean> {
    return (await this.checkpointer.getTuple({ configurable: { thread_id: jobId } })) !== undefined;
  }

  private async document(jobId: string): Promise<JobDocument> {
    const doc = await this.store.get(jobId);
    if (!doc) throw new Error(`job ${jobId} vanished from the store`);
    return doc;
  }

  private async compact(jobId: string): Promise<void> {
    await this.checkpointer.deleteThread(jobId);
  }
}
