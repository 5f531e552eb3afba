/**
 * The job store: job documents, their events (the SSE stream), step runs, model usage. One interface, one
 * implementation per database (sqlite/, and postgres/ next); nothing outside src/store knows which one runs, and
 * `openStores` in ./index.ts is the only place that chooses.
 *
 * Which operations must be atomic, whatever the backend:
 * - every change to a job document (markRunning, stepChanged, saveFinished, reopen, setWebhook) is a read-modify-write
 *   of one row, together with the events it produces: two orchestrators, an API and workers on different machines may
 *   change the same job at once, and neither update nor event may be lost;
 * - createOrGet creates a job once: a repeated id (two producers, a redelivered message) returns the same job, and only
 *   its creator appends the `queued` event;
 * - delete removes the job with its step runs and events, or nothing.
 */
import { totalUsage, warningsOf } from '../lib/job-document.js';
import { MAX_SEARCH_DEPTH, type SearchText, type SnippetPart } from '../lib/search.js';
import type { JobSink } from '../nodes/index.js';
import type { RelatedDuplicate } from './duplicates.js';
import type { PeopleStore } from './people-store.js';
import {
  TERMINAL_STATUSES,
  type FinishedJob,
  type JobDocument,
  type JobError,
  type JobInput,
  type RetryOptions,
  type ReviewDecision,
  type ReviewRequest,
  type AnyStepName,
  type StepRecord,
  type StepStatus,
  type WebhookDelivery,
} from '../lib/types.js';

/**
 * The job store, in the parts its users need: a caller takes the narrowest part that serves it (a webhook sender
 * needs documents, an SSE stream events, /metrics the counts), and each backend implements them all in one class.
 */
export interface JobStore extends JobSink, JobDocuments, JobEventFeed, StepRunLog, JobQueries, JobMetrics {
  /** Faces and the people they form, in the same database. */
  readonly people: PeopleStore;
  /** A running step's progress (0-100) in its record; nothing when the step is not running. */
  stepProgress(jobId: string, step: AnyStepName, percent: number): Promise<void>;
  /** Resolves when the database answers a query (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Job documents: created once, changed by read-modify-write with their events (see the atomicity notes above). */
export interface JobDocuments {
  /**
   * The job's document, creating it as `queued` the first time its id is seen (a repeated id is the same job).
   * `requestHash`: the fingerprint of the HTTP request that creates it under an Idempotency-Key, written with the new
   * job in one statement (a job that exists keeps the one it was created with: see getRequestHash).
   */
  createOrGet(input: JobInput, requestHash?: string): Promise<JobDocument>;
  get(id: string): Promise<JobDocument | null>;
  /** The input the job was created with (what a resumed or retried run starts from). */
  getInput(id: string): Promise<JobInput | null>;
  markRunning(id: string): Promise<void>;
  /** The job stopped for a person's review (see JobRunner). */
  awaitReview(id: string, request: ReviewRequest, found: FoundSoFar): Promise<void>;
  /** A reviewer's decision on a job `awaiting_review`; false when it is not waiting or was decided already. */
  decideReview(id: string, decision: ReviewDecision): Promise<boolean>;
  /** A step's record changed; a late `running` never moves a settled step backwards. */
  stepChanged(jobId: string, step: AnyStepName, record: StepRecord): Promise<void>;
  /** The finished job recorded, with its duplicates, search text and faces, in one transaction. */
  saveFinished(job: FinishedJob): Promise<void>;
  /** Ends a job that never reached its graph (rejected at intake, cancelled while queued) with `error`. */
  endBeforeStart(input: JobInput, status: 'failed' | 'cancelled', error: JobError): Promise<JobDocument>;
  /**
   * Puts a finished job back to `queued` for a retry run; its steps and results stay until replaced. The retry's
   * state is kept beside the job and read by the orchestrator: it never travels in a producer's message.
   */
  reopen(jobId: string, retry: RetryOptions): Promise<JobDocument | null>;
  /** The fingerprint of the HTTP request that created the job under an Idempotency-Key (see createOrGet). */
  getRequestHash(jobId: string): Promise<string | null>;
  /** The latest retry the service made of this job, if any. */
  getRetry(jobId: string): Promise<RetryOptions | null>;
  setWebhook(jobId: string, delivery: WebhookDelivery): Promise<void>;
  /**
   * Jobs that have not ended (queued, running, awaiting_review) and whose documents have not changed since
   * `changedBefore`, least recently changed first, `limit` at a time; `after` is the last job of the previous page.
   * What the sweep looks at for runs that stopped and reviews that are due.
   */
  unsettled(changedBefore: string, limit: number, after?: UnsettledCursor): Promise<JobDocument[]>;
  /** Removes the job, its step runs, its events, its duplicate registration and its faces (and people left without any); false when there was no such job. (Checkpoints and files are the caller's.) */
  delete(id: string): Promise<boolean>;
}

/** What a job's changes produced, in order: the SSE stream and the webhooks read it. */
export interface JobEventFeed {
  /** Events of a job after `afterId` (0: all), oldest first: what SSE streams and resumes from. */
  events(jobId: string, afterId?: number): Promise<JobEvent[]>;
  /**
   * Calls `listener` with a job's id soon after new events of that job are committed, by this process or any other
   * (PostgreSQL: LISTEN/NOTIFY, sent by the transaction that writes them; SQLite: one poll of the events table per
   * watcher). `null` means that events of any job may have been missed (the watcher reconnected): re-read them all.
   * A notification can also be lost unannounced: readers keep their last event id and re-read now and then anyway.
   * Resolves, once watching, to the function that stops it.
   */
  watchEvents(listener: (jobId: string | null) => void): Promise<() => Promise<void>>;
}

/** Every execution of a step, one row each: how operators (and the tests) see that nothing ran twice. */
export interface StepRunLog {
  stepStarted(jobId: string, step: AnyStepName, attempt: number): Promise<number>;
  stepEnded(runId: number, status: StepStatus, errorCode?: string): Promise<void>;
  /** Every execution of the job's steps, oldest first. */
  runs(jobId: string): Promise<StepRun[]>;
}

/** Finding jobs: pages of them, full-text search, duplicates. */
export interface JobQueries {
  /** Newest first; `cursor` is the opaque `nextCursor` of the previous page (anything else: InvalidCursor). */
  list(filter: JobFilter, limit: number, cursor?: string): Promise<JobPage>;
  /**
   * Full-text search (the query language is in lib/search.ts), best match first among the newest MAX_SEARCH_DEPTH
   * jobs that match, narrowed by `filter`; each job with the snippet that matched. `cursor` is the previous page's
   * `nextCursor`. Searches run beside the store's other work, a bounded number at once for a bounded time
   * (SearchLimits): past those, SearchRefused. saveFinished indexes a job from its document; `index` replaces that
   * with fuller text (the whole transcript and document text).
   */
  search(query: string, filter: JobFilter, limit: number, cursor?: string): Promise<SearchPage>;
  index(jobId: string, text: SearchText): Promise<void>;
  /**
   * The job's duplicates in its owner's scope, both ways (jobs registered before and after it), exact ones first then
   * the nearest; [] for a job that is not registered (not finished, failed, or no such job). See ./duplicates.ts.
   */
  duplicates(jobId: string): Promise<RelatedDuplicate[]>;
  /**
   * The first `completed` job in `user`'s scope with these bytes, if any, other than `exceptId`: what a job with the
   * same sha256 shares under DUPLICATES=skip.
   */
  exactDuplicateOf(user: JobInput['user'], sha256: string, exceptId: string): Promise<JobDocument | null>;
}

/** What /metrics reads. */
export interface JobMetrics {
  /** Model spending by provider, model and capability. */
  aiUsageTotals(): Promise<AiUsageTotal[]>;
  countByStatus(): Promise<Record<string, number>>;
  countFailuresByCode(): Promise<Record<string, number>>;
  /** Durations of finished steps, from the job documents of the last `limit` finished jobs. */
  stepDurations(limit?: number): Promise<StepDuration[]>;
}

export interface StepRun {
  id: number;
  jobId: string;
  step: AnyStepName;
  attempt: number;
  pid: number;
  status: StepStatus;
  errorCode: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface JobEvent {
  id: number;
  type: 'status' | 'step';
  data: Record<string, unknown>;
  createdAt: string;
}

/** Where a page of `unsettled` jobs ended: the last job's `updatedAt` and id. */
export interface UnsettledCursor {
  updatedAt: string;
  id: string;
}

/** The statuses of a job that has not ended. */
export const UNSETTLED_STATUSES = ['queued', 'running', 'awaiting_review'] as const;

export interface JobFilter {
  status?: string;
  fileType?: string;
  user?: string;
  /** true: only jobs whose documents list duplicates (results.duplicates); false: only those that list none. */
  duplicates?: boolean;
}

export interface JobPage {
  jobs: JobDocument[];
  nextCursor: string | null;
}

export interface SearchPage extends JobPage {
  /** One per job, in the same order: the part of the job's text that matched. */
  matches: { id: string; snippet: SnippetPart[] }[];
}

/** A search cursor: the offset of the next page in the ranking. */
export function encodeSearchCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString('base64url');
}

export function decodeSearchCursor(cursor: string): number | null {
  try {
    const { o } = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { o?: unknown };
    return Number.isSafeInteger(o) && (o as number) >= 0 && (o as number) <= MAX_SEARCH_DEPTH ? (o as number) : null;
  } catch {
    return null;
  }
}

export interface AiUsageTotal {
  provider: string;
  model: string;
  capability: string;
  inputTokens: number;
  outputTokens: number;
  calls: number;
  latencyMs: number;
}

export interface StepDuration {
  step: string;
  status: string;
  seconds: number;
}

/** A database written by a newer release: this code would misread it, so start-up stops. */
export class SchemaTooNew extends Error {
  constructor(found: number, known: number) {
    super(
      `the database's schema is version ${found}, newer than this media-orchestrator knows (${known}): ` +
        'run the release that wrote it, or a later one',
    );
    this.name = 'SchemaTooNew';
  }
}

/** A `cursor` this API never gave out: the caller's mistake, not page one. */
export class InvalidCursor extends Error {
  constructor() {
    super('cursor is not a nextCursor this API gave out');
    this.name = 'InvalidCursor';
  }
}

/**
 * A search the store would not run (TOO_BROAD: a prefix stands for too many words; BUSY: every search slot is taken
 * and the line is full) or stopped (TIMEOUT: it ran past its time budget).
 */
export class SearchRefused extends Error {
  constructor(
    readonly reason: 'TOO_BROAD' | 'BUSY' | 'TIMEOUT',
    message: string,
  ) {
    super(message);
    this.name = 'SearchRefused';
  }
}

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    return typeof createdAt === 'string' && typeof id === 'string' ? { createdAt, id } : null;
  } catch {
    return null;
  }
}

/** A counter's increment: a whole number, never negative or NaN (/metrics counters cannot go down). */
export function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}

/** The events a document change produces: one per step whose record changed, then one for a changed status. */
export function changeEvents(
  before: JobDocument,
  after: JobDocument,
): { type: JobEvent['type']; data: Record<string, unknown> }[] {
  const out: { type: JobEvent['type']; data: Record<string, unknown> }[] = [];
  for (const [step, record] of Object.entries(after.steps)) {
    if (JSON.stringify(before.steps[step as AnyStepName]) !== JSON.stringify(record)) {
      out.push({ type: 'step', data: { step, ...record } });
    }
  }
  if (before.status !== after.status) {
    out.push({ type: 'status', data: { status: after.status, ...(after.error ? { error: after.error } : {}) } });
  }
  return out;
}

/*
 * What each change does to a job document, the same on every backend: the backend reads the row, applies one of these
 * and writes it back with the events `changeEvents` gives, in one transaction.
 */

export function awaitReviewChange(request: ReviewRequest, found: FoundSoFar): (doc: JobDocument) => void {
  return (doc) => {
    if (TERMINAL_STATUSES.includes(doc.status)) return;
    doc.status = 'awaiting_review';
    doc.review = { ...request, requestedAt: new Date().toISOString() };
    // What the steps made, so the reviewer sees the picture, the text and the metadata they decide on.
    doc.fileType = found.fileType;
    if (found.fileInfo) {
      const { name, size, mime, sha256 } = found.fileInfo;
      doc.file = { name, size, mime, sha256 };
    }
    doc.results = found.results;
    setWarnings(doc);
    const usage = totalUsage(found.results);
    if (usage) doc.usage = usage;
  };
}

/** The document's warnings, from its results (none: no `warnings` key). */
function setWarnings(doc: JobDocument): void {
  const warnings = warningsOf(doc.results);
  if (warnings.length > 0) doc.warnings = warnings;
  else delete doc.warnings;
}

/** A job's findings before it has finished (what the checkpoint holds): see awaitReview. */
export type FoundSoFar = Pick<FinishedJob, 'fileType' | 'fileInfo' | 'results'>;

/**
 * Records a reviewer's decision on a job that waits for one; `decided.ok` says whether this call made it (a job not
 * waiting, or already decided by a concurrent call, is left as it was).
 */
export function decideReviewChange(decision: ReviewDecision, decided: { ok: boolean }): (doc: JobDocument) => void {
  return (doc) => {
    if (doc.status !== 'awaiting_review' || !doc.review || doc.review.decision) return;
    doc.review = {
      ...doc.review,
      decision: decision.decision,
      ...(decision.note && { note: decision.note }),
      decidedAt: new Date().toISOString(),
    };
    decided.ok = true;
  };
}

export function markRunningChange(doc: JobDocument): void {
  if (!TERMINAL_STATUSES.includes(doc.status)) doc.status = 'running';
}

export function stepChange(step: AnyStepName, record: StepRecord): (doc: JobDocument) => void {
  return (doc) => {
    // A resumed or re-delivered step can report `running` late; never move a settled step backwards.
    const current = doc.steps[step];
    if (record.status === 'running' && current && current.status !== 'running' && current.status !== 'pending') return;
    doc.steps[step] = record;
  };
}

export function progressChange(step: AnyStepName, percent: number): (doc: JobDocument) => void {
  return (doc) => {
    const current = doc.steps[step];
    if (current?.status !== 'running' || current.progress === percent) return;
    doc.steps[step] = { ...current, progress: percent };
  };
}

export function finishedChange(job: FinishedJob): (doc: JobDocument) => void {
  return (doc) => {
    doc.status = job.status;
    doc.fileType = job.fileType;
    if (job.fileInfo) {
      const { name, size, mime, sha256 } = job.fileInfo;
      doc.file = { name, size, mime, sha256 };
    }
    doc.user = job.user ?? null;
    doc.steps = job.steps;
    doc.results = job.results;
    const usage = totalUsage(job.results);
    if (usage) doc.usage = usage;
    else delete doc.usage;
    doc.error = job.error;
    if (job.duplicateOf) doc.duplicateOf = job.duplicateOf;
    else delete doc.duplicateOf;
    setWarnings(doc);
    doc.finishedAt = new Date().toISOString();
  };
}

export function reopenChange(doc: JobDocument): void {
  doc.status = 'queued';
  doc.error = null;
  doc.finishedAt = null;
  delete doc.webhook;
}

export function webhookChange(delivery: WebhookDelivery): (doc: JobDocument) => void {
  return (doc) => {
    doc.webhook = delivery;
  };
}

/** The finished run of a job that never reached its graph (rejected at intake, cancelled while queued). */
export function notStarted(input: JobInput, status: 'failed' | 'cancelled', error: JobError): FinishedJob {
  return {
    jobId: input.jobId,
    status,
    fileType: null,
    file: input.file,
    fileInfo: null,
    user: input.user ?? null,
    steps: {},
    results: {},
    error,
  };
}

/** The job a finished run describes, as the input that would have created it (a job finished before it was stored). */
export function inputOf(job: FinishedJob): JobInput {
  return { jobId: job.jobId, file: job.file, user: job.user };
}

/** Step durations of finished documents, for /metrics. */
export function durationsOf(docs: JobDocument[]): StepDuration[] {
  const out: StepDuration[] = [];
  for (const doc of docs) {
    for (const [step, rec] of Object.entries(doc.steps)) {
      if (rec.durationMs !== undefined) out.push({ step, status: rec.status, seconds: rec.durationMs / 1000 });
    }
  }
  return out;
}
