/**
 * Job operations, one implementation behind the HTTP routes and the command line: create (a record and its
 * JOB_CREATED message, both or neither), get, list and search, cancel, retry and delete. Each refuses what cannot be
 * done with a JobServiceError whose code says why (NOT_FOUND, CONFLICT, INVALID_INPUT, UNAVAILABLE); the routes turn
 * that code into an HTTP status, the command line into its message and exit code.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { ArtifactStore } from '../lib/artifacts.js';
import { isInside } from '../lib/files.js';
import { retryRefusal } from '../lib/job-document.js';
import type { Logger } from '../lib/log.js';
import {
  TERMINAL_STATUSES,
  type JobDocument,
  type JobInput,
  type RetryOptions,
  type ReviewDecision,
} from '../lib/types.js';
import {
  SearchRefused,
  type JobFilter,
  type JobPage,
  type JobStore,
  type RelatedDuplicate,
  type SearchPage,
} from '../store/index.js';
import { clearCancel, requestCancel } from '../queue/cancel.js';
import type { Producer } from '../queue/producer.js';

export type JobServiceErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'INVALID_INPUT' | 'UNAVAILABLE' | 'TIMEOUT';

export class JobServiceError extends Error {
  constructor(
    readonly code: JobServiceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'JobServiceError';
  }
}

export interface JobServiceParts {
  config: Config;
  store: JobStore;
  producer: Producer;
  redis: Redis;
  /** What delete removes besides the record; a command line that only cancels has neither. */
  checkpointer?: BaseCheckpointSaver;
  artifacts?: ArtifactStore;
  log?: Logger;
}

/**
 * `file` resolved (symbolic links followed) when it is inside one of `roots`, else null: the one check of a path a
 * producer names, for the API's JSON jobs and the command line's `submit`.
 */
export async function insideRoots(roots: readonly string[], file: string): Promise<string | null> {
  const resolved = path.resolve(file);
  for (const root of roots) {
    // A file that is not there yet (a producer ahead of its upload) is named as given; the job fails FILE_NOT_FOUND.
    if (await isInside(root, resolved)) return fs.realpath(resolved).catch(() => resolved);
  }
  return null;
}

export class JobService {
  constructor(private readonly parts: JobServiceParts) {}

  async get(id: string): Promise<JobDocument> {
    const doc = await this.parts.store.get(id);
    if (!doc) throw new JobServiceError('NOT_FOUND', `no job ${id}`);
    return doc;
  }

  /** The job's duplicates in its owner's scope, both ways (store/duplicates.ts); NOT_FOUND for no such job. */
  async duplicates(id: string): Promise<RelatedDuplicate[]> {
    await this.get(id);
    return this.parts.store.duplicates(id);
  }

  /**
   * Newest first; with a non-empty `q`, a full-text search, best match first: INVALID_INPUT for a prefix too broad,
   * UNAVAILABLE when too many searches are running, TIMEOUT for one that ran past SEARCH_TIMEOUT_MS.
   */
  async list(filter: JobFilter & { q?: string }, limit: number, cursor?: string): Promise<JobPage | SearchPage> {
    const { q, ...rest } = filter;
    if (!q?.trim()) return this.parts.store.list(rest, limit, cursor);
    try {
      return await this.parts.store.search(q, rest, limit, cursor);
    } catch (err) {
      if (!(err instanceof SearchRefused)) throw err;
      const code = ({ TOO_BROAD: 'INVALID_INPUT', BUSY: 'UNAVAILABLE', TIMEOUT: 'TIMEOUT' } as const)[err.reason];
      throw new JobServiceError(code, err.message);
    }
  }

  /**
   * The job's record and its JOB_CREATED message, both or neither: when the message cannot be written (Redis is
   * down), a record made for it and its upload go again, and UNAVAILABLE says to come back.
   */
  async create(input: JobInput, requestHash?: string): Promise<JobDocument> {
    const { store, producer, config } = this.parts;
    const existed = (await store.get(input.jobId)) !== null;
    const doc = await store.createOrGet(input, requestHash);
    try {
      await producer.enqueueJob(input);
    } catch (err) {
      if (!existed) {
        await store.delete(input.jobId);
        await fs.rm(path.join(config.uploadsDir, input.jobId), { recursive: true, force: true });
      }
      this.parts.log?.warn({ err, jobId: input.jobId }, 'could not queue the job');
      throw new JobServiceError('UNAVAILABLE', 'the job queue is unreachable right now; nothing was stored, try again');
    }
    return doc;
  }

  /** Removes a job that has not started, or stops a running one; CONFLICT for a job that has ended. */
  async cancel(id: string): Promise<JobDocument> {
    await this.get(id);
    const { store, producer, redis, config } = this.parts;
    const result = await requestCancel({ store, queue: producer.queue, redis, prefix: config.queuePrefix }, id);
    if (result.ended) throw new JobServiceError('CONFLICT', result.message);
    return this.get(id);
  }

  /**
   * Re-runs a finished job's failed steps (the others keep their results): CONFLICT when it has not finished or its
   * failure cannot change (see retryRefusal).
   */
  async retry(id: string): Promise<JobDocument> {
    const doc = await this.get(id);
    const refusal = retryRefusal(doc);
    if (refusal) throw new JobServiceError('CONFLICT', refusal);
    const { store, redis, config } = this.parts;
    const input = await store.getInput(doc.id);
    if (!input) throw new JobServiceError('NOT_FOUND', `job ${doc.id} has no stored input to retry`);
    const generation = ((await store.getRetry(doc.id))?.generation ?? 0) + 1;
    const { size, mime, sha256, name } = doc.file;
    const retry: RetryOptions = {
      generation,
      previous: {
        steps: doc.steps,
        results: doc.results,
        fileType: doc.fileType,
        fileInfo:
          size !== undefined && mime && sha256
            ? { name, size, mime, sha256, ext: path.extname(name).slice(1).toLowerCase() }
            : null,
      },
    };
    // A cancelled job's marker would cancel the retry at once.
    await clearCancel(redis, config.queuePrefix, doc.id);
    const reopened = await store.reopen(doc.id, retry);
    await this.queueRun(input, `r${generation}`);
    return reopened ?? this.get(doc.id);
  }

  /**
   * A reviewer's decision on a job `awaiting_review`: stored (one decision wins; CONFLICT for a job that is not
   * waiting or was decided meanwhile), then the job is queued again so that an orchestrator resumes it from its
   * checkpoint with the decision.
   */
  async review(id: string, decision: ReviewDecision): Promise<JobDocument> {
    const doc = await this.get(id);
    const { store } = this.parts;
    if (doc.status !== 'awaiting_review')
      throw new JobServiceError('CONFLICT', `job ${id} is ${doc.status}, not awaiting_review`);
    if (!(await store.decideReview(id, decision)))
      throw new JobServiceError('CONFLICT', `job ${id} has been decided already`);
    const input = await store.getInput(id);
    if (!input) throw new JobServiceError('NOT_FOUND', `job ${id} has no stored input to resume`);
    const generation = (await store.getRetry(id))?.generation ?? 0;
    await this.queueRun(input, `review${generation}`);
    return this.get(id);
  }

  /**
   * Queues a run of a job whose new state (a retry, a decision) is already stored. When the queue cannot take it
   * (Redis is down), the stored state stands and the orchestrators' sweep queues the run once the job has been
   * unchanged for SWEEP_INTERVAL_MS: what the caller asked for happens, only later.
   */
  private async queueRun(input: JobInput, run: string): Promise<void> {
    try {
      await this.parts.producer.enqueueJob(input, run);
    } catch (err) {
      this.parts.log?.warn({ err, jobId: input.jobId, run }, 'could not queue the run now; the sweep will');
    }
  }

  /** Removes a finished job: its record, checkpoints, upload and artifacts. CONFLICT while it runs. */
  async delete(id: string): Promise<void> {
    const doc = await this.get(id);
    if (!TERMINAL_STATUSES.includes(doc.status))
      throw new JobServiceError('CONFLICT', `job ${doc.id} is ${doc.status}: cancel it first`);
    const { store, checkpointer, artifacts, config } = this.parts;
    await checkpointer?.deleteThread(doc.id);
    await artifacts?.remove(doc.id);
    await fs.rm(path.join(config.uploadsDir, doc.id), { recursive: true, force: true });
    await store.delete(doc.id);
  }
}
