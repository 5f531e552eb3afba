/**
 * Runs one job on its LangGraph thread (thread_id = job id). A job with a checkpoint resumes with invoke(null):
 * passing the input again would start over from START. After the job is finished and stored, its checkpoints are
 * deleted: the job store keeps the result, so the checkpoint database does not grow with every job.
 */
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import { TERMINAL_STATUSES, type JobDocument, type JobInput } from '../lib/types.js';
import type { JobGraph } from './graph.js';

export interface RunnerStore {
  createOrGet(input: JobInput): JobDocument;
  get(id: string): JobDocument | null;
  markRunning(id: string): void;
}

export class JobRunner {
  constructor(
    private readonly graph: JobGraph,
    private readonly checkpointer: BaseCheckpointSaver,
    private readonly store: RunnerStore,
  ) {}

  async run(input: JobInput, opts: { signal?: AbortSignal } = {}): Promise<JobDocument> {
    const known = this.store.createOrGet(input);
    if (TERMINAL_STATUSES.includes(known.status)) {
      await this.compact(input.jobId);
      return known;
    }
    this.store.markRunning(input.jobId);
    const config = { configurable: { thread_id: input.jobId }, durability: 'sync' as const, signal: opts.signal };
    const resume = (await this.checkpointer.getTuple({ configurable: { thread_id: input.jobId } })) !== undefined;
    await this.graph.invoke(resume ? null : input, config);
    await this.compact(input.jobId);
    const doc = this.store.get(input.jobId);
    if (!doc) throw new Error(`job ${input.jobId} vanished from the store`);
    return doc;
  }

  /** True when the job has checkpoints to resume from. */
  async hasCheckpoint(jobId: string): Promise<boolean> {
    return (await this.checkpointer.getTuple({ configurable: { thread_id: jobId } })) !== undefined;
  }

  private async compact(jobId: string): Promise<void> {
    await this.checkpointer.deleteThread(jobId);
  }
}
