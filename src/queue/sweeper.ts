/**
 * The sweep: what no message will ever move on is found in the job store and moved on. A job's document says it is
 * queued or running, or its review was decided, but no run of it is waiting, delayed or active in the jobs queue: its
 * message was lost (Redis restarted without persistence), its run gave up on trouble that outlasted its retries (a
 * database out of reach, a full disk), or a decision was stored while Redis was down. The sweep queues a run again;
 * the run resumes from the checkpoint. Reviews past REVIEW_TIMEOUT are decided here too, oldest first.
 *
 * One orchestrator sweeps at a time (a Redis lock), every SWEEP_INTERVAL_MS, and only jobs unchanged for that long: a
 * job being created, retried or decided right now is left to the request doing it.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { JobRunner } from '../graph/runner.js';
import type { Logger } from '../lib/log.js';
import type { JobDocument, JobError } from '../lib/types.js';
import type { JobDocuments, UnsettledCursor } from '../store/index.js';
import { resumesKey, stoppedKey, sweepLockKey } from './names.js';
import { enqueueJob } from './producer.js';
import { decodeFailure } from './task-result.js';

/** A job the sweep has resumed this many times, and that stopped again, is ended `failed` instead. */
export const MAX_RESUMES = 5;
/** Counters and reasons are kept a week, as BullMQ keeps a finished run. */
const KEEP_SECONDS = 7 * 24 * 3600;
const PAGE = 200;

export interface SweepParts {
  config: Pick<Config, 'queuePrefix' | 'reviewTimeout' | 'sweepIntervalMs'>;
  store: JobDocuments;
  runner: Pick<JobRunner, 'fail'>;
  /** The jobs queue. */
  queue: Queue;
  redis: Redis;
  log: Logger;
}

export interface SweepReport {
  resumed: string[];
  failed: string[];
}

/** True when a run of `jobId` is waiting, delayed or active in the jobs queue (see liveOwners). */
export async function hasLiveRun(queue: Queue, jobId: string): Promise<boolean> {
  return (await liveOwners(queue)).has(jobId);
}

/**
 * The job ids the runs in the jobs queue may belong to. A run's BullMQ id is its job's id, or that id and `-<run>`
 * (a retry, a review decision, a resume): each id counts with every prefix of it that ends before a `-`. A job whose
 * id is such a prefix of another job's run is taken for live when it may not be: the sweep leaves it, never runs it
 * twice.
 */
async function liveOwners(queue: Queue): Promise<Set<string>> {
  const ids = await queue.getRanges(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);
  const owners = new Set<string>();
  for (const id of ids) {
    owners.add(id);
    for (let at = id.indexOf('-'); at > 0; at = id.indexOf('-', at + 1)) owners.add(id.slice(0, at));
  }
  return owners;
}

/** Every unsettled job changed before `changedBefore`, least recently changed first, page after page. */
async function* unsettled(store: JobDocuments, changedBefore: number): AsyncGenerator<JobDocument> {
  let after: UnsettledCursor | undefined;
  for (;;) {
    const page = await store.unsettled(new Date(changedBefore).toISOString(), PAGE, after);
    yield* page;
    if (page.length < PAGE) return;
    const last = page.at(-1)!;
    after = { updatedAt: last.updatedAt, id: last.id };
  }
}

/**
 * Decides, as REVIEW_TIMEOUT says, every review that has waited longer than it, the longest waiting first (a job
 * waiting for its review changes no more, so its last change is when it began to wait), and queues each decided job
 * to resume. The caller holds the lock.
 */
export async function timeOutReviews(parts: SweepParts, now = Date.now()): Promise<string[]> {
  const { config, store, log } = parts;
  const timeout = config.reviewTimeout;
  if (!timeout) return [];
  const decided: string[] = [];
  const note = `nobody reviewed it within REVIEW_TIMEOUT (${timeout.ms} ms)`;
  for await (const doc of unsettled(store, now - timeout.ms)) {
    const since = Date.parse(doc.review?.requestedAt ?? '');
    if (doc.status !== 'awaiting_review' || doc.review?.decision || !(now - since > timeout.ms)) continue;
    if (!(await store.decideReview(doc.id, { decision: timeout.decision, note }))) continue;
    decided.push(doc.id);
    log.info({ jobId: doc.id, decision: timeout.decision }, 'review timed out');
    const input = await store.getInput(doc.id);
    // Should Redis refuse it now, the sweep queues the decided job later.
    if (input) await enqueueJob(parts.queue, input, `review${(await store.getRetry(doc.id))?.generation ?? 0}`);
  }
  return decided;
}

/**
 * Moves on every job that nothing else will: unchanged for SWEEP_INTERVAL_MS, queued, running or decided, with no run
 * waiting, delayed or active in the jobs queue. The caller holds the lock.
 */
export async function sweep(parts: SweepParts, now = Date.now()): Promise<SweepReport> {
  const report: SweepReport = { resumed: [], failed: [] };
  let owners: Set<string> | null = null;
  for await (const doc of unsettled(parts.store, now - parts.config.sweepIntervalMs)) {
    if (doc.status === 'awaiting_review' && !doc.review?.decision) continue;
    owners ??= await liveOwners(parts.queue);
    if (owners.has(doc.id)) continue;
    const outcome = await moveOn(parts, doc);
    if (outcome) report[outcome].push(doc.id);
  }
  return report;
}

/** Queues a run of a job nothing will move on, or ends it when it has been resumed MAX_RESUMES times already. */
async function moveOn(parts: SweepParts, doc: JobDocument): Promise<'resumed' | 'failed' | null> {
  const { config, store, queue, redis, runner, log } = parts;
  const input = await store.getInput(doc.id);
  // Changed since the page was read (a retry, a decision, a run that woke up): the change moves it on.
  const fresh = await store.get(doc.id);
  if (!input || fresh?.updatedAt !== doc.updatedAt) return null;
  const resumes = await redis.incr(resumesKey(config.queuePrefix, doc.id));
  await redis.expire(resumesKey(config.queuePrefix, doc.id), KEEP_SECONDS);
  if (resumes > MAX_RESUMES) {
    const stopped = await redis.get(stoppedKey(config.queuePrefix, doc.id));
    const last = stopped ? decodeFailure(stopped) : null;
    const error: JobError = {
      code: last && last.code !== 'INVALID_INPUT' && last.code !== 'CANCELLED' ? last.code : 'INTERNAL',
      message: `its run stopped ${MAX_RESUMES + 1} times without finishing${last ? `; the last time: ${last.message}` : ''}`,
      step: null,
    };
    await runner.fail(input, error);
    log.error({ jobId: doc.id, error }, 'gave up on a job whose run keeps stopping');
    return 'failed';
  }
  await enqueueJob(queue, input, `s${resumes}`);
  log.warn({ jobId: doc.id, status: doc.status, resumes }, 'resumed a job whose run had stopped');
  return 'resumed';
}

/**
 * Sweeps every SWEEP_INTERVAL_MS, and looks for due reviews as often as REVIEW_TIMEOUT needs (half of it, from half
 * a second to a minute), whenever this process gets the lock; returns the function that stops it.
 */
export function startSweeper(parts: SweepParts): () => void {
  const { config, redis, log } = parts;
  const timeout = config.reviewTimeout;
  const tick = Math.min(config.sweepIntervalMs, timeout ? Math.min(60_000, Math.max(500, timeout.ms / 2)) : Infinity);
  let lastSweep = Date.now();
  let busy = false;
  const round = async (): Promise<void> => {
    const lock = await redis.set(sweepLockKey(config.queuePrefix), String(process.pid), 'PX', tick, 'NX');
    if (lock !== 'OK') return;
    await timeOutReviews(parts);
    if (Date.now() - lastSweep < config.sweepIntervalMs) return;
    lastSweep = Date.now();
    const report = await sweep(parts);
    if (report.resumed.length + report.failed.length > 0) log.info(report, 'swept');
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    round()
      .catch((err: unknown) => log.warn({ err }, 'the sweep could not finish; it runs again next time'))
      .finally(() => (busy = false));
  }, tick);
  timer.unref();
  return () => clearInterval(timer);
}
