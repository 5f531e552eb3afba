/**
 * The job store in SQLite, in the same database file as the LangGraph checkpoints: one machine, any number of
 * processes (WAL, busy timeout). The `doc` column holds the job document exactly as GET /jobs/:id returns it; the
 * other columns exist to filter and sort. better-sqlite3 is synchronous: each method does its work at once and
 * returns a settled promise, and every read-modify-write runs in one `BEGIN IMMEDIATE` transaction (SQLite's single
 * writer makes it atomic across processes).
 */
import Database from 'better-sqlite3';
import { newJobDocument } from '../../lib/job-document.js';
import { displayName, MAX_SEARCH_PAGE, queryWords, searchTextOf, type SearchText } from '../../lib/search.js';
import type { AiUse } from '../../nodes/index.js';
import type {
  FinishedJob,
  JobDocument,
  JobError,
  JobInput,
  RetryOptions,
  ReviewDecision,
  ReviewRequest,
  AnyStepName,
  StepRecord,
  StepStatus,
  WebhookDelivery,
} from '../../lib/types.js';
import {
  InvalidCursor,
  changeEvents,
  count,
  decodeCursor,
  decodeSearchCursor,
  durationsOf,
  encodeCursor,
  finishedChange,
  inputOf,
  markRunningChange,
  awaitReviewChange,
  decideReviewChange,
  notStarted,
  reopenChange,
  stepChange,
  progressChange,
  webhookChange,
  type AiUsageTotal,
  type JobEvent,
  type JobFilter,
  type JobPage,
  type SearchPage,
  type JobStore,
  type FoundSoFar,
  type StepDuration,
  type StepRun,
  type UnsettledCursor,
  UNSETTLED_STATUSES,
} from '../job-store.js';
import {
  duplicatesAmong,
  duplicatesFilter,
  fingerprintOf,
  listDuplicates,
  nearSeqs,
  ownerOf,
  partCandidates,
  related,
  type Fingerprint,
  type HashRow,
  type RelatedDuplicate,
} from '../duplicates.js';
import { hashParts } from '../../lib/hamming.js';
import { DEFAULT_SEARCH_LIMITS, type SearchLimits } from '../search-gate.js';
import { migrate } from './migrations.js';
import { deleteJobFacesNow, indexPeopleNow, SqlitePeopleStore } from './sqlite-people-store.js';
import { SearchThreads } from './search-threads.js';

export type Db = Database.Database;

export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // Several processes (CLI, service, Studio) may share the file; wait for a lock instead of failing.
  db.pragma('busy_timeout = 10000');
  db.pragma('synchronous = NORMAL');
  return db;
}

/** How often a watcher reads the events table for rows other processes wrote (SQLite cannot notify). */
const SQLITE_WATCH_MS = 200;

export class SqliteJobStore implements JobStore {
  /** Prepared statements by their SQL: preparing one on every call cost more than running it. */
  private readonly statements = new Map<string, Database.Statement>();

  /** Searches run in threads with connections of their own to the same file. */
  private readonly searches: SearchThreads;

  readonly people: SqlitePeopleStore;

  /** The store owns `db`, a database file (a checkpointer may share it): close() closes it. */
  constructor(
    private readonly db: Db,
    searchLimits: SearchLimits = DEFAULT_SEARCH_LIMITS,
  ) {
    migrate(db);
    this.people = new SqlitePeopleStore(db);
    this.searches = new SearchThreads(db.name, searchLimits);
  }

  createOrGet(input: JobInput, requestHash?: string): Promise<JobDocument> {
    return Promise.resolve(this.createOrGetNow(input, requestHash));
  }

  get(id: string): Promise<JobDocument | null> {
    return Promise.resolve(this.getNow(id));
  }

  getInput(id: string): Promise<JobInput | null> {
    const row = this.sql('SELECT input FROM jobs WHERE id = ?').get(id) as { input: string } | undefined;
    return Promise.resolve(row ? (JSON.parse(row.input) as JobInput) : null);
  }

  markRunning(id: string): Promise<void> {
    this.update(id, markRunningChange);
    return Promise.resolve();
  }

  awaitReview(id: string, request: ReviewRequest, found: FoundSoFar): Promise<void> {
    this.update(id, awaitReviewChange(request, found));
    return Promise.resolve();
  }

  decideReview(id: string, decision: ReviewDecision): Promise<boolean> {
    const decided = { ok: false };
    this.update(id, decideReviewChange(decision, decided));
    return Promise.resolve(decided.ok);
  }

  stepChanged(jobId: string, step: AnyStepName, record: StepRecord): Promise<void> {
    this.update(jobId, stepChange(step, record));
    return Promise.resolve();
  }

  stepProgress(jobId: string, step: AnyStepName, percent: number): Promise<void> {
    this.update(jobId, progressChange(step, percent));
    return Promise.resolve();
  }

  saveFinished(job: FinishedJob): Promise<void> {
    this.db
      .transaction(() => {
        const fp = fingerprintOf(job);
        const listed = fp ? duplicatesAmong(fp, job.jobId, this.candidatesNow(fp)) : [];
        const change = finishedChange(job);
        this.updateNow(job.jobId, (doc) => (change(doc), listDuplicates(listed)(doc)), inputOf(job));
        this.registerNow(job.jobId, fp, listed.length);
        this.indexNow(job.jobId, searchTextOf(displayName(job.file, job.fileInfo), job.results));
      })
      .immediate();
    return Promise.resolve();
  }

  duplicates(jobId: string): Promise<RelatedDuplicate[]> {
    const self = this.sql('SELECT owner, job_id AS jobId, sha256, hash, seq FROM job_hashes WHERE job_id = ?').get(
      jobId,
    ) as (HashRow & { owner: string }) | undefined;
    if (!self) return Promise.resolve([]);
    return Promise.resolve(related(self, self.owner, this.candidatesNow(self)));
  }

  exactDuplicateOf(user: JobInput['user'], sha256: string, exceptId: string): Promise<JobDocument | null> {
    const row = this.sql(
      `SELECT j.doc FROM job_hashes h JOIN jobs j ON j.id = h.job_id
        WHERE h.owner = ? AND h.sha256 = ? AND h.job_id <> ? AND j.status = 'completed' ORDER BY h.seq LIMIT 1`,
    ).get(ownerOf(user), sha256, exceptId) as { doc: string } | undefined;
    return Promise.resolve(row ? (JSON.parse(row.doc) as JobDocument) : null);
  }

  /**
   * The registered jobs that may be duplicates of `fp`: the same sha256, and those whose hash is near, found in two
   * passes: the part indexes alone (the rows whose parts are close enough, their other parts read from the same
   * index), then the rows within the distance read whole. duplicatesAmong sorts them.
   */
  private candidatesNow(fp: Pick<Fingerprint, 'owner' | 'sha256' | 'hash'>): HashRow[] {
    const columns = 'job_id AS jobId, sha256, hash, seq FROM job_hashes';
    const exact = this.sql(`SELECT ${columns} WHERE owner = ? AND sha256 = ?`).all(fp.owner, fp.sha256) as HashRow[];
    if (!fp.hash) return exact;
    const parts = partCandidates(fp.hash);
    const firstPass = this.sql(
      parts
        .map(
          (values, i) => `SELECT seq, p0, p1, p2, p3 FROM job_hashes INDEXED BY job_hashes_p${i}
            WHERE owner = ? AND p${i} IN (${values.map(() => '?').join(',')})`,
        )
        .join(' UNION ALL '),
    )
      .raw(true)
      .all(...parts.flatMap((values) => [fp.owner, ...values])) as number[][];
    const seqs = nearSeqs(fp.hash, firstPass);
    if (seqs.length === 0) return exact;
    const near = this.sql(`SELECT ${columns} WHERE seq IN (SELECT value FROM json_each(?))`).all(
      JSON.stringify(seqs),
    ) as HashRow[];
    return [...exact, ...near];
  }

  /** Registers a finished job for later lookups (or removes it: failed, cancelled), keeping its place in the order. */
  private registerNow(jobId: string, fp: Fingerprint | null, listed: number): void {
    if (!fp) {
      this.sql('DELETE FROM job_hashes WHERE job_id = ?').run(jobId);
      return;
    }
    const parts = fp.hash ? hashParts(fp.hash) : [null, null, null, null];
    this.sql(
      `INSERT INTO job_hashes (job_id, owner, sha256, hash, p0, p1, p2, p3, listed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner, sha256 = excluded.sha256, hash = excluded.hash,
           p0 = excluded.p0, p1 = excluded.p1, p2 = excluded.p2, p3 = excluded.p3, listed = excluded.listed`,
    ).run(jobId, fp.owner, fp.sha256, fp.hash, ...parts, listed);
  }

  index(jobId: string, text: SearchText): Promise<void> {
    this.db.transaction(() => this.indexNow(jobId, text)).immediate();
    return Promise.resolve();
  }

  /** Replaces the job's search row; nothing for a job that no longer exists (deleted while it was being indexed). */
  private indexNow(jobId: string, { name, body }: SearchText): void {
    if (!this.sql('SELECT 1 FROM jobs WHERE id = ?').get(jobId)) return;
    const known = this.sql('SELECT row FROM job_search_rows WHERE job_id = ?').get(jobId) as
      { row: number } | undefined;
    // The people column is kept: it changes with the job's faces and their people (indexPeopleNow).
    if (known) this.sql('UPDATE job_search SET name = ?, body = ? WHERE rowid = ?').run(name, body, known.row);
    else {
      const { lastInsertRowid } = this.sql('INSERT INTO job_search (name, body) VALUES (?, ?)').run(name, body);
      this.sql('INSERT INTO job_search_rows (job_id, row) VALUES (?, ?)').run(jobId, lastInsertRowid);
      indexPeopleNow(this.db, [jobId]);
    }
  }

  private unindexNow(jobId: string): void {
    const known = this.sql('SELECT row FROM job_search_rows WHERE job_id = ?').get(jobId) as
      { row: number } | undefined;
    if (!known) return;
    this.sql('DELETE FROM job_search WHERE rowid = ?').run(known.row);
    this.sql('DELETE FROM job_search_rows WHERE job_id = ?').run(jobId);
  }

  search(query: string, filter: JobFilter, limit: number, cursor?: string): Promise<SearchPage> {
    const offset = cursor === undefined ? 0 : decodeSearchCursor(cursor);
    if (offset === null) return Promise.reject(new InvalidCursor());
    const words = queryWords(query);
    if (words.length === 0) return Promise.resolve({ jobs: [], matches: [], nextCursor: null });
    return this.searches.search({ words, filter, limit: Math.min(limit, MAX_SEARCH_PAGE), offset });
  }

  async endBeforeStart(input: JobInput, status: 'failed' | 'cancelled', error: JobError): Promise<JobDocument> {
    await this.saveFinished(notStarted(input, status, error));
    return this.getNow(input.jobId)!;
  }

  reopen(jobId: string, retry: RetryOptions): Promise<JobDocument | null> {
    this.db
      .transaction(() => {
        this.updateNow(jobId, reopenChange);
        this.sql('UPDATE jobs SET retry = ? WHERE id = ?').run(JSON.stringify(retry), jobId);
      })
      .immediate();
    return Promise.resolve(this.getNow(jobId));
  }

  getRequestHash(jobId: string): Promise<string | null> {
    const row = this.sql('SELECT request_hash AS hash FROM jobs WHERE id = ?').get(jobId) as
      { hash: string | null } | undefined;
    return Promise.resolve(row?.hash ?? null);
  }

  getRetry(jobId: string): Promise<RetryOptions | null> {
    const row = this.sql('SELECT retry FROM jobs WHERE id = ?').get(jobId) as { retry: string | null } | undefined;
    return Promise.resolve(row?.retry ? (JSON.parse(row.retry) as RetryOptions) : null);
  }

  setWebhook(jobId: string, delivery: WebhookDelivery): Promise<void> {
    this.update(jobId, webhookChange(delivery));
    return Promise.resolve();
  }

  aiUsed(use: AiUse): Promise<void> {
    this.sql(
      `INSERT INTO ai_usage (job_id, step, capability, provider, model, input_tokens, output_tokens, calls,
         latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      use.jobId,
      use.step,
      use.capability,
      use.provider,
      use.model,
      count(use.usage.inputTokens),
      count(use.usage.outputTokens),
      count(use.usage.calls),
      count(use.usage.latencyMs),
      new Date().toISOString(),
    );
    return Promise.resolve();
  }

  aiUsageTotals(): Promise<AiUsageTotal[]> {
    return Promise.resolve(
      this.sql(
        `SELECT provider, model, capability, SUM(input_tokens) AS inputTokens, SUM(output_tokens) AS outputTokens,
           SUM(calls) AS calls, SUM(latency_ms) AS latencyMs FROM ai_usage GROUP BY provider, model, capability`,
      ).all() as AiUsageTotal[],
    );
  }

  stepStarted(jobId: string, step: AnyStepName, attempt: number): Promise<number> {
    const info = this.sql(
      'INSERT INTO step_runs (job_id, step, attempt, pid, status, started_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(jobId, step, attempt, process.pid, 'running', new Date().toISOString());
    return Promise.resolve(Number(info.lastInsertRowid));
  }

  stepEnded(runId: number, status: StepStatus, errorCode?: string): Promise<void> {
    this.sql('UPDATE step_runs SET status = ?, error_code = ?, finished_at = ? WHERE id = ?').run(
      status,
      errorCode ?? null,
      new Date().toISOString(),
      runId,
    );
    return Promise.resolve();
  }

  runs(jobId: string): Promise<StepRun[]> {
    return Promise.resolve(
      this.sql(
        `SELECT id, job_id AS jobId, step, attempt, pid, status, error_code AS errorCode, started_at AS startedAt,
                  finished_at AS finishedAt FROM step_runs WHERE job_id = ? ORDER BY id`,
      ).all(jobId) as StepRun[],
    );
  }

  events(jobId: string, afterId = 0): Promise<JobEvent[]> {
    const rows = this.sql(
      'SELECT id, type, data, created_at AS createdAt FROM job_events WHERE job_id = ? AND id > ? ORDER BY id',
    ).all(jobId, afterId) as { id: number; type: JobEvent['type']; data: string; createdAt: string }[];
    return Promise.resolve(rows.map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> })));
  }

  unsettled(changedBefore: string, limit: number, after?: UnsettledCursor): Promise<JobDocument[]> {
    const rows = this.sql(
      `SELECT doc FROM jobs WHERE status IN (${UNSETTLED_STATUSES.map(() => '?').join(', ')}) AND updated_at < ?
         AND (updated_at > ? OR (updated_at = ? AND id > ?)) ORDER BY updated_at, id LIMIT ?`,
    ).all(
      ...UNSETTLED_STATUSES,
      changedBefore,
      after?.updatedAt ?? '',
      after?.updatedAt ?? '',
      after?.id ?? '',
      limit,
    ) as { doc: string }[];
    return Promise.resolve(rows.map((r) => JSON.parse(r.doc) as JobDocument));
  }

  list(filter: JobFilter, limit: number, cursor?: string): Promise<JobPage> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, ...values: (string | number)[]): void => {
      where.push(clause);
      args.push(...values);
    };
    if (filter.status) add('status = ?', filter.status);
    if (filter.fileType) add('file_type = ?', filter.fileType);
    if (filter.user) add('user_id = ?', filter.user);
    if (filter.duplicates !== undefined) add(duplicatesFilter('id', filter.duplicates));
    const after = cursor === undefined ? null : decodeCursor(cursor);
    if (cursor !== undefined && !after) return Promise.reject(new InvalidCursor());
    if (after) add('(created_at < ? OR (created_at = ? AND id < ?))', after.createdAt, after.createdAt, after.id);
    const rows = this.sql(
      `SELECT id, created_at AS createdAt, doc FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT ?`,
    ).all(...args, limit + 1) as { id: string; createdAt: string; doc: string }[];
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return Promise.resolve({
      jobs: page.map((r) => JSON.parse(r.doc) as JobDocument),
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    });
  }

  delete(id: string): Promise<boolean> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          this.sql('DELETE FROM step_runs WHERE job_id = ?').run(id);
          this.sql('DELETE FROM job_events WHERE job_id = ?').run(id);
          this.unindexNow(id);
          this.sql('DELETE FROM job_hashes WHERE job_id = ?').run(id);
          deleteJobFacesNow(this.db, id);
          return this.sql('DELETE FROM jobs WHERE id = ?').run(id).changes > 0;
        })
        .immediate(),
    );
  }

  countByStatus(): Promise<Record<string, number>> {
    const rows = this.sql('SELECT status, count(*) AS n FROM jobs GROUP BY status').all() as {
      status: string;
      n: number;
    }[];
    return Promise.resolve(Object.fromEntries(rows.map((r) => [r.status, r.n])));
  }

  countFailuresByCode(): Promise<Record<string, number>> {
    const rows = this.sql(
      `SELECT json_extract(doc, '$.error.code') AS code, count(*) AS n FROM jobs
         WHERE status = 'failed' GROUP BY code`,
    ).all() as { code: string | null; n: number }[];
    return Promise.resolve(Object.fromEntries(rows.map((r) => [r.code ?? 'UNKNOWN', r.n])));
  }

  stepDurations(limit = 1000): Promise<StepDuration[]> {
    const rows = this.sql(`SELECT doc FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?`).all(
      limit,
    ) as { doc: string }[];
    return Promise.resolve(durationsOf(rows.map((r) => JSON.parse(r.doc) as JobDocument)));
  }

  ping(): Promise<void> {
    this.sql('SELECT 1').get();
    return Promise.resolve();
  }

  watchEvents(listener: (jobId: string | null) => void): Promise<() => Promise<void>> {
    // A settled promise, like every method here: a closed database rejects rather than throws.
    return new Promise((resolve) => resolve(this.watchNow(listener)));
  }

  async close(): Promise<void> {
    await this.searches.close();
    if (this.db.open) this.db.close();
  }

  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private watchNow(listener: (jobId: string | null) => void): () => Promise<void> {
    const next = this.sql('SELECT id, job_id AS jobId FROM job_events WHERE id > ? ORDER BY id LIMIT 1000');
    let last = (this.sql('SELECT max(id) AS id FROM job_events').get() as { id: number | null }).id ?? 0;
    // One indexed read per tick, whatever the number of streams waiting on it.
    const timer = setInterval(() => {
      if (!this.db.open) return clearInterval(timer);
      let rows: { id: number; jobId: string }[];
      try {
        rows = next.all(last) as typeof rows;
      } catch {
        return listener(null); // busy or failing: let every stream re-read for itself
      }
      last = rows.at(-1)?.id ?? last;
      for (const jobId of new Set(rows.map((r) => r.jobId))) listener(jobId);
    }, SQLITE_WATCH_MS);
    timer.unref();
    return () => Promise.resolve(clearInterval(timer));
  }

  private getNow(id: string): JobDocument | null {
    const row = this.sql('SELECT doc FROM jobs WHERE id = ?').get(id) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as JobDocument) : null;
  }

  private createOrGetNow(input: JobInput, requestHash?: string): JobDocument {
    const existing = this.getNow(input.jobId);
    if (existing) return existing;
    const doc = newJobDocument(input);
    const now = doc.createdAt;
    return this.db
      .transaction(() => {
        const created =
          this.sql(
            `INSERT INTO jobs (id, status, user_id, priority, input, doc, created_at, updated_at, request_hash)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
          ).run(
            doc.id,
            doc.status,
            doc.user?.id ?? null,
            doc.priority,
            JSON.stringify(input),
            JSON.stringify(doc),
            now,
            now,
            requestHash ?? null,
          ).changes > 0;
        if (created) {
          this.appendEvent(doc.id, 'status', { status: doc.status });
          // Found by its name from the start; its words join when it finishes.
          this.indexNow(doc.id, searchTextOf(doc.file.name, {}));
        }
        return this.getNow(input.jobId) ?? doc;
      })
      .immediate();
  }

  private appendEvent(jobId: string, type: JobEvent['type'], data: Record<string, unknown>): void {
    this.sql('INSERT INTO job_events (job_id, type, data, created_at) VALUES (?, ?, ?, ?)').run(
      jobId,
      type,
      JSON.stringify(data),
      new Date().toISOString(),
    );
  }

  /** Read-modify-write of one document and its events in a write transaction. */
  private update(id: string, mutate: (doc: JobDocument) => void, create?: JobInput): void {
    this.db.transaction(() => this.updateNow(id, mutate, create)).immediate();
  }

  /** The body of `update`; the caller holds the write transaction. */
  private updateNow(id: string, mutate: (doc: JobDocument) => void, create?: JobInput): void {
    let doc = this.getNow(id);
    if (!doc && create) doc = this.createOrGetNow(create);
    if (!doc) return;
    const before = structuredClone(doc);
    mutate(doc);
    for (const event of changeEvents(before, doc)) this.appendEvent(id, event.type, event.data);
    doc.updatedAt = new Date().toISOString();
    this.sql('UPDATE jobs SET status = ?, file_type = ?, doc = ?, updated_at = ?, finished_at = ? WHERE id = ?').run(
      doc.status,
      doc.fileType,
      JSON.stringify(doc),
      doc.updatedAt,
      doc.finishedAt,
      id,
    );
  }
}
