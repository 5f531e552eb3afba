/**
 * Jobs and step runs in SQLite, in the same database file as the LangGraph checkpoints. The `doc` column holds the
 * job document exactly as GET /jobs/:id returns it; the other columns exist to filter and sort.
 */
import Database from 'better-sqlite3';
import { newJobDocument, totalUsage } from '../lib/job-document.js';
import type { AiUse, FinishedJob, JobSink } from '../nodes/index.js';
import {
  TERMINAL_STATUSES,
  type JobDocument,
  type JobInput,
  type JobStatus,
  type StepName,
  type StepRecord,
  type JobError,
  type StepStatus,
  type WebhookDelivery,
  type RetryOptions,
} from '../lib/types.js';

export type Db = Database.Database;

export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // Several processes (CLI, service, Studio) may share the file; wait for a lock instead of failing.
  db.pragma('busy_timeout = 10000');
  db.pragma('synchronous = NORMAL');
  return db;
}

export interface StepRun {
  id: number;
  jobId: string;
  step: StepName;
  attempt: number;
  pid: number;
  status: StepStatus;
  errorCode: string | null;
  startedAt: string;
  finishedAt: string | null;
}

interface JobRow {
  doc: string;
}

export class SqliteJobStore implements JobSink {
  constructor(private readonly db: Db) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        file_type TEXT,
        user_id TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        input TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT,
        retry TEXT,
        request_hash TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
      CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
      CREATE TABLE IF NOT EXISTS step_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        step TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX IF NOT EXISTS step_runs_job ON step_runs (job_id);
      CREATE TABLE IF NOT EXISTS job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id);
      CREATE TABLE IF NOT EXISTS ai_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        step TEXT NOT NULL,
        capability TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
    `);
    // Databases from before retries were kept beside the job.
    const columns = db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'retry')) db.exec('ALTER TABLE jobs ADD COLUMN retry TEXT');
    if (!columns.some((c) => c.name === 'request_hash')) db.exec('ALTER TABLE jobs ADD COLUMN request_hash TEXT');
  }

  /** The job's document, creating it as `queued` the first time its id is seen (a repeated id is the same job). */
  createOrGet(input: JobInput): JobDocument {
    const existing = this.get(input.jobId);
    if (existing) return existing;
    const doc = newJobDocument(input);
    const now = doc.createdAt;
    this.db
      .prepare(
        `INSERT INTO jobs (id, status, user_id, priority, input, doc, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      )
      .run(
        doc.id,
        doc.status,
        doc.user?.id ?? null,
        doc.priority,
        JSON.stringify(input),
        JSON.stringify(doc),
        now,
        now,
      );
    const stored = this.get(input.jobId);
    if (stored?.createdAt === now) this.appendEvent(doc.id, 'status', { status: doc.status });
    return stored ?? doc;
  }

  get(id: string): JobDocument | null {
    const row = this.db.prepare('SELECT doc FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? (JSON.parse(row.doc) as JobDocument) : null;
  }

  getInput(id: string): JobInput | null {
    const row = this.db.prepare('SELECT input FROM jobs WHERE id = ?').get(id) as { input: string } | undefined;
    return row ? (JSON.parse(row.input) as JobInput) : null;
  }

  markRunning(id: string): void {
    this.update(id, (doc) => {
      if (!TERMINAL_STATUSES.includes(doc.status)) doc.status = 'running';
    });
  }

  stepChanged(jobId: string, step: StepName, record: StepRecord): void {
    this.update(jobId, (doc) => {
      // A resumed or re-delivered step can report `running` late; never move a settled step backwards.
      const current = doc.steps[step];
      if (record.status === 'running' && current && current.status !== 'running' && current.status !== 'pending')
        return;
      doc.steps[step] = record;
    });
  }

  saveFinished(job: FinishedJob): Promise<void> {
    this.update(
      job.jobId,
      (doc) => {
        const now = new Date().toISOString();
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
        doc.finishedAt = now;
      },
      job,
    );
    return Promise.resolve();
  }

  /** Ends a job that never reached its graph (rejected at intake, cancelled while queued) with `error`. */
  async endBeforeStart(input: JobInput, status: 'failed' | 'cancelled', error: JobError): Promise<JobDocument> {
    this.createOrGet(input);
    await this.saveFinished({
      jobId: input.jobId,
      status,
      fileType: null,
      file: input.file,
      fileInfo: null,
      user: input.user ?? null,
      steps: {},
      results: {},
      error,
    });
    return this.get(input.jobId)!;
  }

  /**
   * Puts a finished job back to `queued` for a retry run; its steps and results stay until replaced. The retry's
   * state is kept here, beside the job, and read by the orchestrator: it never travels in a producer's message.
   */
  reopen(jobId: string, retry: RetryOptions): JobDocument | null {
    this.update(jobId, (doc) => {
      doc.status = 'queued';
      doc.error = null;
      doc.finishedAt = null;
      delete doc.webhook;
    });
    this.db.prepare('UPDATE jobs SET retry = ? WHERE id = ?').run(JSON.stringify(retry), jobId);
    return this.get(jobId);
  }

  /** The fingerprint of the HTTP request that created the job under an Idempotency-Key. */
  setRequestHash(jobId: string, hash: string): void {
    this.db.prepare('UPDATE jobs SET request_hash = ? WHERE id = ?').run(hash, jobId);
  }

  getRequestHash(jobId: string): string | null {
    const row = this.db.prepare('SELECT request_hash AS hash FROM jobs WHERE id = ?').get(jobId) as
      { hash: string | null } | undefined;
    return row?.hash ?? null;
  }

  /** The latest retry the service made of this job, if any. */
  getRetry(jobId: string): RetryOptions | null {
    const row = this.db.prepare('SELECT retry FROM jobs WHERE id = ?').get(jobId) as
      { retry: string | null } | undefined;
    return row?.retry ? (JSON.parse(row.retry) as RetryOptions) : null;
  }

  setWebhook(jobId: string, delivery: WebhookDelivery): void {
    this.update(jobId, (doc) => {
      doc.webhook = delivery;
    });
  }

  aiUsed(use: AiUse): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO ai_usage (job_id, step, capability, provider, model, input_tokens, output_tokens, calls,
         latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
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

  /** Model spending by provider, model and capability, for /metrics. */
  aiUsageTotals(): {
    provider: string;
    model: string;
    capability: string;
    inputTokens: number;
    outputTokens: number;
    calls: number;
    latencyMs: number;
  }[] {
    return this.db
      .prepare(
        `SELECT provider, model, capability, SUM(input_tokens) AS inputTokens, SUM(output_tokens) AS outputTokens,
         SUM(calls) AS calls, SUM(latency_ms) AS latencyMs FROM ai_usage GROUP BY provider, model, capability`,
      )
      .all() as ReturnType<SqliteJobStore['aiUsageTotals']>;
  }

  stepStarted(jobId: string, step: StepName, attempt: number): Promise<number> {
    const info = this.db
      .prepare('INSERT INTO step_runs (job_id, step, attempt, pid, status, started_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(jobId, step, attempt, process.pid, 'running', new Date().toISOString());
    return Promise.resolve(Number(info.lastInsertRowid));
  }

  stepEnded(runId: number, status: StepStatus, errorCode?: string): Promise<void> {
    this.db
      .prepare('UPDATE step_runs SET status = ?, error_code = ?, finished_at = ? WHERE id = ?')
      .run(status, errorCode ?? null, new Date().toISOString(), runId);
    return Promise.resolve();
  }

  runs(jobId: string): StepRun[] {
    return this.db
      .prepare(
        `SELECT id, job_id AS jobId, step, attempt, pid, status, error_code AS errorCode, started_at AS startedAt,
                  finished_at AS finishedAt FROM step_runs WHERE job_id = ? ORDER BY id`,
      )
      .all(jobId) as StepRun[];
  }

  /** Events of a job after `afterId` (0: all), oldest first: what SSE streams and resumes from. */
  events(jobId: string, afterId = 0): JobEvent[] {
    return (
      this.db
        .prepare(
          'SELECT id, type, data, created_at AS createdAt FROM job_events WHERE job_id = ? AND id > ? ORDER BY id',
        )
        .all(jobId, afterId) as { id: number; type: JobEvent['type']; data: string; createdAt: string }[]
    ).map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  /** Newest first; `cursor` is the opaque `nextCursor` of the previous page. */
  list(filter: JobFilter, limit: number, cursor?: string): { jobs: JobDocument[]; nextCursor: string | null } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, ...values: (string | number)[]): void => {
      where.push(clause);
      args.push(...values);
    };
    if (filter.status) add('status = ?', filter.status);
    if (filter.fileType) add('file_type = ?', filter.fileType);
    if (filter.user) add('user_id = ?', filter.user);
    const after = cursor === undefined ? null : decodeCursor(cursor);
    if (cursor !== undefined && !after) throw new InvalidCursor();
    if (after) add('(created_at < ? OR (created_at = ? AND id < ?))', after.createdAt, after.createdAt, after.id);
    const rows = this.db
      .prepare(
        `SELECT id, created_at AS createdAt, doc FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT ?`,
      )
      .all(...args, limit + 1) as { id: string; createdAt: string; doc: string }[];
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      jobs: page.map((r) => JSON.parse(r.doc) as JobDocument),
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  /** Removes the job, its step runs and its events. (Checkpoints and files are the caller's.) */
  delete(id: string): boolean {
    return this.db
      .transaction(() => {
        this.db.prepare('DELETE FROM step_runs WHERE job_id = ?').run(id);
        this.db.prepare('DELETE FROM job_events WHERE job_id = ?').run(id);
        return this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id).changes > 0;
      })
      .immediate();
  }

  countByStatus(): Record<string, number> {
    const rows = this.db.prepare('SELECT status, count(*) AS n FROM jobs GROUP BY status').all() as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  countFailuresByCode(): Record<string, number> {
    const rows = this.db
      .prepare(
        `SELECT json_extract(doc, '$.error.code') AS code, count(*) AS n FROM jobs
         WHERE status = 'failed' GROUP BY code`,
      )
      .all() as { code: string | null; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.code ?? 'UNKNOWN', r.n]));
  }

  /** Durations of finished steps, from the job documents of the last `limit` finished jobs. */
  stepDurations(limit = 1000): { step: string; status: string; seconds: number }[] {
    const rows = this.db
      .prepare(`SELECT doc FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?`)
      .all(limit) as { doc: string }[];
    const out: { step: string; status: string; seconds: number }[] = [];
    for (const row of rows) {
      const doc = JSON.parse(row.doc) as JobDocument;
      for (const [step, rec] of Object.entries(doc.steps)) {
        if (rec.durationMs !== undefined) out.push({ step, status: rec.status, seconds: rec.durationMs / 1000 });
      }
    }
    return out;
  }

  private appendEvent(jobId: string, type: JobEvent['type'], data: Record<string, unknown>): void {
    this.db
      .prepare('INSERT INTO job_events (job_id, type, data, created_at) VALUES (?, ?, ?, ?)')
      .run(jobId, type, JSON.stringify(data), new Date().toISOString());
  }

  /** One event per step whose record changed, then one for a changed job status: the SSE stream. */
  private recordChanges(before: JobDocument, after: JobDocument): void {
    for (const [step, record] of Object.entries(after.steps)) {
      if (JSON.stringify(before.steps[step as StepName]) !== JSON.stringify(record)) {
        this.appendEvent(after.id, 'step', { step, ...record });
      }
    }
    if (before.status !== after.status) {
      this.appendEvent(after.id, 'status', { status: after.status, ...(after.error ? { error: after.error } : {}) });
    }
  }

  /** Read-modify-write of one document in a write transaction, so concurrent processes never lose an update. */
  private update(id: string, mutate: (doc: JobDocument) => void, created?: FinishedJob): void {
    this.db
      .transaction(() => {
        let doc = this.get(id);
        if (!doc && created) {
          doc = this.createOrGet({ jobId: created.jobId, file: created.file, user: created.user });
        }
        if (!doc) return;
        const before = structuredClone(doc);
        mutate(doc);
        this.recordChanges(before, doc);
        doc.updatedAt = new Date().toISOString();
        this.db
          .prepare('UPDATE jobs SET status = ?, file_type = ?, doc = ?, updated_at = ?, finished_at = ? WHERE id = ?')
          .run(doc.status, doc.fileType, JSON.stringify(doc), doc.updatedAt, doc.finishedAt, id);
      })
      .immediate();
  }
}

export interface JobEvent {
  id: number;
  type: 'status' | 'step';
  data: Record<string, unknown>;
  createdAt: string;
}

export interface JobFilter {
  status?: string;
  fileType?: string;
  user?: string;
}

/** A `cursor` this API never gave out: the caller's mistake, not page one. */
export class InvalidCursor extends Error {
  constructor() {
    super('cursor is not a nextCursor this API gave out');
    this.name = 'InvalidCursor';
  }
}

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    return typeof createdAt === 'string' && typeof id === 'string' ? { createdAt, id } : null;
  } catch {
    return null;
  }
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** A counter's increment: a whole number, never negative or NaN (/metrics counters cannot go down). */
function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}
