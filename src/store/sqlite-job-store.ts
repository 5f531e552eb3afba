/**
 * Jobs and step runs in SQLite, in the same database file as the LangGraph checkpoints. The `doc` column holds the
 * job document exactly as GET /jobs/:id returns it; the other columns exist to filter and sort.
 */
import Database from 'better-sqlite3';
import { newJobDocument } from '../lib/job-document.js';
import type { FinishedJob, JobSink } from '../nodes/index.js';
import {
  TERMINAL_STATUSES,
  type JobDocument,
  type JobInput,
  type JobStatus,
  type StepName,
  type StepRecord,
  type StepStatus,
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
        finished_at TEXT
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
    `);
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
    return this.get(input.jobId) ?? doc;
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
        doc.error = job.error;
        doc.finishedAt = now;
      },
      job,
    );
    return Promise.resolve();
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

  /** Read-modify-write of one document in a write transaction, so concurrent processes never lose an update. */
  private update(id: string, mutate: (doc: JobDocument) => void, created?: FinishedJob): void {
    this.db
      .transaction(() => {
        let doc = this.get(id);
        if (!doc && created) {
          doc = this.createOrGet({ jobId: created.jobId, file: created.file, user: created.user });
        }
        if (!doc) return;
        mutate(doc);
        doc.updatedAt = new Date().toISOString();
        this.db
          .prepare('UPDATE jobs SET status = ?, file_type = ?, doc = ?, updated_at = ?, finished_at = ? WHERE id = ?')
          .run(doc.status, doc.fileType, JSON.stringify(doc), doc.updatedAt, doc.finishedAt, id);
      })
      .immediate();
  }
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}
