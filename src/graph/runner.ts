/**
 * Runs one job on its LangGraph thread (thread_id = job id). A job with a checkpoint resumes with invoke(null):
 * passing the input again would start over from START. After the job is finished and stored, its checkpoints are
 * deleted: the job store keeps the result, so the checkpoint database does not grow with every job.
 */
import { basename, extname } from 'node:path';
import { Command, INTERRUPT, isInterrupted, type BaseCheckpointSaver } from '@langchain/langgraph';
import { effectiveInstructions, UnknownProfile, type Profiles } from '../lib/instructions.js';
import { sha256File } from '../lib/files.js';
import { isTransient } from '../lib/transient.js';
import {
  TERMINAL_STATUSES,
  type FinishedJob,
  type JobDocument,
  type JobError,
  type JobInput,
  type RetryOptions,
  type ReviewRequest,
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
  getInput(id: string): Promise<JobInput | null>;
  markRunning(id: string): Promise<void>;
  saveFinished(job: FinishedJob): Promise<void>;
  /** The job stopped for a person's review: `awaiting_review`, with why and what to show. */
  awaitReview(
    id: string,
    request: ReviewRequest,
    found: Pick<JobState, 'fileType' | 'fileInfo' | 'results'>,
  ): Promise<void>;
  /** The first completed job of the same owner with these bytes (DUPLICATES=skip). */
  exactDuplicateOf?(user: JobInput['user'], sha256: string, exceptId: string): Promise<JobDocument | null>;
}

/** DUPLICATES: `mark` lists a job's duplicates in its document; `skip` also ends a job whose bytes are known at once. */
export type DuplicatesMode = 'mark' | 'skip';

/** A job id already names a job for another file. The existing job is left as it is. */
export class JobIdConflict extends Error {
  constructor(
    readonly jobId: string,
    why: string,
  ) {
    super(`job id ${jobId} is already used by a job for another file (${why}); use a new job id`);
    this.name = 'JobIdConflict';
  }
}

/**
 * Why `incoming` is not the job `stored` was created for, or null when it is: the same file path (as the producer
 * named it, before the service pinned it) and, where both declare one, the same sha256.
 */
export function sourceConflict(stored: JobInput, incoming: JobInput): string | null {
  // The other job's path is not shown: it is a server path this producer may not know.
  if (stored.file.path !== incoming.file.path) return 'it was created for another file.path';
  const [a, b] = [stored.file.sha256?.toLowerCase(), incoming.file.sha256?.toLowerCase()];
  if (a && b && a !== b) return 'it was created with another sha256';
  return null;
}

export class JobRunner {
  constructor(
    private readonly graph: JobGraph,
    private readonly checkpointer: BaseCheckpointSaver,
    private readonly store: RunnerStore,
    private readonly opts: {
      /** The presets a job's `profile` may name (PROFILES_FILE), applied once, when its run begins. */
      profiles?: Profiles;
      /** DUPLICATES: `skip` ends an exact duplicate at once with the earlier job's results. */
      duplicates?: DuplicatesMode;
    } = {},
  ) {}

  /**
   * The job `input` names, created the first time its id is seen. The same id for the same file is the same job (a
   * redelivered message, a repeated command); the same id for another file throws JobIdConflict and changes nothing.
   * Call it with the input as the producer sent it, before the file is pinned into the job's folder.
   */
  async claim(input: JobInput): Promise<JobDocument> {
    const doc = await this.store.createOrGet(input);
    const stored = await this.store.getInput(input.jobId);
    const why = stored && sourceConflict(stored, input);
    if (why) throw new JobIdConflict(input.jobId, why);
    return doc;
  }

  /**
   * Runs the job (claimed first: see `claim`; `claimed` is the document a caller's own claim returned). `retry`: the
   * state of a re-run, from the service's own store (a resumed run finds it in its checkpoint). `readFrom`: where the
   * steps read the file when the service pinned it into the job's folder; the job keeps the path the producer named.
   */
  async run(
    input: JobInput,
    opts: { signal?: AbortSignal; retry?: RetryOptions; readFrom?: string; claimed?: JobDocument } = {},
  ): Promise<JobDocument> {
    const known = opts.claimed ?? (await this.claim(input));
    if (TERMINAL_STATUSES.includes(known.status)) {
      await this.compact(input.jobId);
      return known;
    }
    // Waiting for a review: nothing runs until the decision is stored, then the run resumes with it.
    let decision: Command | null = null;
    if (known.status === 'awaiting_review') {
      const review = known.review;
      if (!review?.decision) return known;
      decision = new Command({ resume: { decision: review.decision, ...(review.note && { note: review.note }) } });
    }
    const resume = decision !== null || (await this.hasCheckpoint(input.jobId));
    // The instructions the job runs with, its profile's with its own on top, decided here once: the graph's state
    // carries them, and a resumed run keeps those it began with. A profile this service does not define is bad input.
    let instructions: JobInput['instructions'];
    if (!resume) {
      try {
        instructions = effectiveInstructions(input.instructions, input.profile, this.opts.profiles ?? {}) ?? undefined;
      } catch (err) {
        if (!(err instanceof UnknownProfile)) throw err;
        return this.fail(input, { code: 'INVALID_INPUT', message: err.message, step: null });
      }
    }
    if (this.opts.duplicates === 'skip' && !resume && !opts.retry) {
      const shared = await this.shareDuplicate(input, opts.readFrom ?? input.file.path, opts.signal);
      if (shared) return shared;
    }
    await this.store.markRunning(input.jobId);
    const config = { configurable: { thread_id: input.jobId }, durability: 'sync' as const, signal: opts.signal };
    try {
      const file = opts.readFrom
        ? { ...input.file, path: opts.readFrom, name: input.file.name ?? basename(input.file.path) }
        : input.file;
      const graphInput = { ...input, file, instructions };
      const out = decision
        ? await this.graph.invoke(decision, config)
        : await this.graph.invoke(resume ? null : { ...graphInput, ...(opts.retry && { retry: opts.retry }) }, config);
      if (isInterrupted<ReviewRequest>(out)) {
        // The checkpoint keeps the run where it stopped; the job waits without holding anything.
        const { fileType, fileInfo, results } = out as unknown as JobState;
        await this.store.awaitReview(input.jobId, out[INTERRUPT][0]!.value!, { fileType, fileInfo, results });
        return this.document(input.jobId);
      }
    } catch (err) {
      if (opts.signal?.aborted && opts.signal.reason === CANCEL_REASON) return this.cancel(input);
      throw err;
    }
    await this.compact(input.jobId);
    return this.document(input.jobId);
  }

  /**
   * DUPLICATES=skip: when an earlier completed job of the same owner had the same bytes, this job ends `completed` at
   * once with no step run: its results are that job's (their URLs point at its artifacts) and `duplicateOf` names it.
   * Null when there is none, or the file cannot be read here (validate then reports why), or the run was stopped.
   */
  private async shareDuplicate(input: JobInput, file: string, signal?: AbortSignal): Promise<JobDocument | null> {
    if (!this.store.exactDuplicateOf) return null;
    const sha256 = await sha256File(file, signal).catch(() => null);
    // A declared sha256 that differs is validate's CHECKSUM_MISMATCH to report.
    if (!sha256 || (input.file.sha256 && input.file.sha256.toLowerCase() !== sha256)) return null;
    const original = await this.store.exactDuplicateOf(input.user ?? null, sha256, input.jobId);
    if (!original?.file.mime || original.file.size === undefined) return null;
    const name = input.file.name ?? basename(input.file.path);
    const { duplicates: _, ...results } = original.results;
    await this.store.saveFinished({
      jobId: input.jobId,
      status: 'completed',
      fileType: original.fileType,
      file: input.file,
      fileInfo: { name, size: original.file.size, mime: original.file.mime, ext: extname(name).slice(1), sha256 },
      user: input.user ?? null,
      steps: {},
      results,
      error: null,
      duplicateOf: original.duplicateOf ?? original.id,
    });
    return this.document(input.jobId);
  }

  /** Ends a job as `cancelled` (steps that were running are marked failed with CANCELLED) and drops its checkpoints. */
  cancel(input: JobInput): Promise<JobDocument> {
    return this.end(input, 'cancelled', { code: 'CANCELLED', message: 'the job was cancelled', step: null });
  }

  /**
   * Ends a job as `failed` with `error` when its run cannot go on (a bug, or trouble that outlasted its retries);
   * steps that were running are marked failed with it. What the finished steps found is kept, as for `cancel`.
   */
  fail(input: JobInput, error: JobError): Promise<JobDocument> {
    return this.end(input, 'failed', error);
  }

  private async end(input: JobInput, status: 'cancelled' | 'failed', error: JobError): Promise<JobDocument> {
    const doc = await this.store.createOrGet(input);
    if (!TERMINAL_STATUSES.includes(doc.status)) {
      // What the steps that finished learnt lives in the checkpoint, not yet in the document: keep it, so the job
      // shows its type and results, and a retry starts from them (validate is not run again for nothing).
      // A checkpoint that cannot be read (the very reason a run failed, maybe) must not keep the job from ending.
      const learnt = await this.checkpointed(input.jobId).catch((err: unknown) => {
        if (isTransient(err)) throw err;
        return null;
      });
      const steps: StepRecords = {};
      for (const [name, record] of Object.entries(doc.steps)) {
        steps[name as keyof StepRecords] =
          record.status === 'running' || record.status === 'pending'
            ? { ...record, status: 'failed', error: { ...error, step: name as keyof StepRecords } }
            : record;
      }
      await this.store.saveFinished({
        jobId: input.jobId,
        status,
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
