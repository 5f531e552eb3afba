/**
 * The job store in PostgreSQL: any number of processes on any number of machines. Every read-modify-write of a job
 * document is one transaction that locks the job's row (`SELECT … FOR UPDATE`), so two orchestrators, an API and
 * workers changing the same job never lose an update or an event; event ids come from a sequence, so a stream
 * resumed with Last-Event-ID misses nothing.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { hashParts } from '../../lib/hamming.js';
import type { Duplicate, FinishedJob } from '../../lib/types.js';
import {
  duplicatesAmong,
  duplicatesFilter,
  fingerprintOf,
  listDuplicates,
  NEAR_DUPLICATE_DISTANCE,
  ownerOf,
  partCandidates,
  related,
  type Fingerprint,
  type HashRow,
  type RelatedDuplicate,
} from '../duplicates.js';
import { postgresSchemaProblem } from '../../config.js';
import { newJobDocument } from '../../lib/job-document.js';
import {
  displayName,
  MATCH_END,
  MATCH_START,
  MAX_SEARCH_DEPTH,
  MAX_SEARCH_PAGE,
  queryWords,
  searchTextOf,
  SNIPPET_CHARS,
  snippetParts,
  tsQuery,
  type SearchText,
} from '../../lib/search.js';
import type { AiUse } from '../../nodes/index.js';
import type {
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
  progressChange,
  count,
  decodeCursor,
  decodeSearchCursor,
  durationsOf,
  encodeCursor,
  encodeSearchCursor,
  finishedChange,
  inputOf,
  markRunningChange,
  awaitReviewChange,
  decideReviewChange,
  notStarted,
  reopenChange,
  stepChange,
  webhookChange,
  type AiUsageTotal,
  type JobEvent,
  type JobFilter,
  type JobPage,
  type JobStore,
  type FoundSoFar,
  type SearchPage,
  type StepDuration,
  type StepRun,
  type UnsettledCursor,
  UNSETTLED_STATUSES,
} from '../job-store.js';
import { DEFAULT_SEARCH_LIMITS, SearchGate, type SearchLimits } from '../search-gate.js';
import { migrate } from './migrations.js';
import { deleteJobFacesIn, PostgresPeopleStore } from './postgres-people-store.js';
import { isConnectionLoss, retryOnConnectionLoss } from './retry.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface PostgresStoreOptions {
  /** A schema of its own (created if missing); default: the connection's search_path (usually `public`). */
  schema?: string;
  /** Connections this process may open (besides the searches' own: `search.concurrency`). */
  maxConnections?: number;
  /** How many searches run at once, on a pool of their own, and for how long. */
  search?: SearchLimits;
}

/** A connection pool for the store (and the checkpointer beside it), its search_path set to `schema` when given. */
export function postgresPool(url: string, opts: PostgresStoreOptions = {}): pg.Pool {
  const { schema } = opts;
  const problem = schema === undefined ? null : postgresSchemaProblem(schema);
  if (problem) throw new Error(`the schema name ${problem}`);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? 10,
    keepAlive: true,
    // Each new connection's first statement, awaited before the pool hands the connection out: a URL's own `options`
    // cannot override the schema (as an `options` setting in the pool's config would be), whatever else the URL sets.
    // A connection that cannot set it is closed and its checkout fails, rather than run against another schema.
    ...(schema && {
      // pg-pool awaits what onConnect returns (pg-pool 3.10+); @types/pg declares it void.
      // eslint-disable-next-line @typescript-eslint/no-misused-promises
      onConnect: (client: pg.ClientBase) => client.query(`SET search_path TO ${client.escapeIdentifier(schema)}`),
    }),
  });
  // An idle connection that breaks (the server restarted) is dropped by the pool; without a listener it would
  // crash the process.
  pool.on('error', () => undefined);
  // So would one that breaks while checked out (pg-pool listens only while a connection is idle): the statement in
  // flight fails instead, and the connection is dropped when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** SQLSTATE of a statement cancelled (here: by statement_timeout). */
const QUERY_CANCELED = '57014';

/**
 * The NOTIFY channel of a schema's job events: the schemas of one database share channels, so each gets its own
 * (a hash keeps the name within PostgreSQL's 63 characters).
 */
function eventChannel(schema: string | undefined): string {
  return `mo_job_events_${createHash('sha256')
    .update(schema ?? '')
    .digest('hex')
    .slice(0, 16)}`;
}

/** The first key of the advisory locks that serialise duplicate registration per owner (the second: the owner's). */
const DUPLICATES_LOCK = 0x6d6f6475;

export class PostgresJobStore implements JobStore {
  /** The stop functions of watchEvents still running: close() stops them. */
  private readonly watchers = new Set<() => Promise<void>>();
  /**
   * Searches run on connections of their own, so that they cannot take the ones job reads and writes wait for;
   * opened by the first search (step threads and the command line never search).
   */
  private searchPool: pg.Pool | null = null;
  private readonly searchGate: SearchGate;
  readonly people: PostgresPeopleStore;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly schema: string | undefined,
    private readonly searchLimits: SearchLimits,
  ) {
    this.searchGate = new SearchGate(searchLimits);
    this.people = new PostgresPeopleStore(pool, (work) => this.transaction(work));
  }

  /** Connects, creates the schema if asked, and applies the migrations the database lacks. */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresJobStore> {
    const pool = postgresPool(url, opts);
    try {
      return await PostgresJobStore.onPool(pool, opts.schema, opts.search);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  /** The store on a pool made by `postgresPool` (closing the store ends the pool), migrated first. */
  static async onPool(
    pool: pg.Pool,
    schema?: string,
    search: SearchLimits = DEFAULT_SEARCH_LIMITS,
  ): Promise<PostgresJobStore> {
    const client = await pool.connect();
    try {
      await migrate(client, schema);
    } finally {
      client.release();
    }
    return new PostgresJobStore(pool, eventChannel(schema), schema, search);
  }

  async createOrGet(input: JobInput, requestHash?: string): Promise<JobDocument> {
    return this.transaction((c) => this.createOrGetIn(c, input, requestHash));
  }

  async get(id: string): Promise<JobDocument | null> {
    return retryOnConnectionLoss(() => this.getIn(this.pool, id));
  }

  async getInput(id: string): Promise<JobInput | null> {
    const { rows } = await this.query<{ input: JobInput }>('SELECT input FROM jobs WHERE id = $1', [id]);
    return rows[0]?.input ?? null;
  }

  markRunning(id: string): Promise<void> {
    return this.update(id, markRunningChange);
  }

  awaitReview(id: string, request: ReviewRequest, found: FoundSoFar): Promise<void> {
    return this.update(id, awaitReviewChange(request, found));
  }

  async decideReview(id: string, decision: ReviewDecision): Promise<boolean> {
    const decided = { ok: false };
    await this.update(id, decideReviewChange(decision, decided));
    return decided.ok;
  }

  stepChanged(jobId: string, step: AnyStepName, record: StepRecord): Promise<void> {
    return this.update(jobId, stepChange(step, record));
  }

  stepProgress(jobId: string, step: AnyStepName, percent: number): Promise<void> {
    return this.update(jobId, progressChange(step, percent));
  }

  saveFinished(job: FinishedJob): Promise<void> {
    return this.transaction(async (c) => {
      const fp = fingerprintOf(job);
      let listed: Duplicate[] = [];
      if (fp) {
        // One registration at a time per owner: two copies finishing at once on two machines would each miss the
        // other under READ COMMITTED.
        await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [DUPLICATES_LOCK, fp.owner]);
        listed = duplicatesAmong(fp, job.jobId, await this.candidatesIn(c, fp));
      }
      const change = finishedChange(job);
      await this.updateIn(c, job.jobId, (doc) => (change(doc), listDuplicates(listed)(doc)), inputOf(job));
      await this.registerIn(c, job.jobId, fp, listed.length);
      await this.indexIn(c, job.jobId, searchTextOf(displayName(job.file, job.fileInfo), job.results));
    });
  }

  async duplicates(jobId: string): Promise<RelatedDuplicate[]> {
    const { rows } = await this.query<HashRow & { owner: string }>(
      `SELECT owner, job_id AS "jobId", sha256, hash, seq::float8 AS seq FROM job_hashes WHERE job_id = $1`,
      [jobId],
    );
    const self = rows[0];
    if (!self) return [];
    return related(self, self.owner, await this.transaction((c) => this.candidatesIn(c, self)));
  }

  async exactDuplicateOf(user: JobInput['user'], sha256: string, exceptId: string): Promise<JobDocument | null> {
    const { rows } = await this.query<{ doc: JobDocument }>(
      `SELECT j.doc FROM job_hashes h JOIN jobs j ON j.id = h.job_id
        WHERE h.owner = $1 AND h.sha256 = $2 AND h.job_id <> $3 AND j.status = 'completed' ORDER BY h.seq LIMIT 1`,
      [ownerOf(user), sha256, exceptId],
    );
    return rows[0]?.doc ?? null;
  }

  /**
   * See SqliteJobStore.candidatesNow: the same sha256, and the near ones in two passes (the part indexes alone, then
   * the rows within the distance), here in one statement: a round trip to the server costs more than the lookup.
   * Runs in the caller's transaction (SET LOCAL).
   */
  private async candidatesIn(c: pg.PoolClient, fp: Pick<Fingerprint, 'owner' | 'sha256' | 'hash'>): Promise<HashRow[]> {
    const columns = 'job_id AS "jobId", sha256, hash, seq::float8 AS seq FROM job_hashes';
    const exact = `SELECT ${columns} WHERE owner = $1 AND sha256 = $2`;
    if (!fp.hash) return (await c.query<HashRow>(exact, [fp.owner, fp.sha256])).rows;
    const parts = partCandidates(fp.hash);
    // Parallel workers would cost far more to start (100 ms on a busy machine) than the lookup takes (1-2 ms).
    await c.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const firstPass = parts
      .map((_, i) => `SELECT seq, p0, p1, p2, p3 FROM job_hashes WHERE owner = $1 AND p${i} = ANY($${i + 3}::int[])`)
      .join(' UNION ALL ');
    // Each part's bits counted with integer arithmetic (SWAR), one step a lateral subquery: no text, no PG 14.
    const step = (expr: (i: number) => string, to: string): string =>
      `CROSS JOIN LATERAL (SELECT ${[0, 1, 2, 3].map((i) => `${expr(i)} AS ${to}${i}`).join(', ')}) ${to}`;
    const { rows } = await c.query<HashRow>(
      `${exact} UNION SELECT ${columns} WHERE seq IN (
         SELECT c.seq FROM (${firstPass}) c
           ${step((i) => `c.p${i} # $${i + 7}::int`, 'x')}
           ${step((i) => `x.x${i} - ((x.x${i} >> 1) & 21845)`, 'y')}
           ${step((i) => `(y.y${i} & 13107) + ((y.y${i} >> 2) & 13107)`, 'z')}
           ${step((i) => `(z.z${i} + (z.z${i} >> 4)) & 3855`, 'w')}
          WHERE ${[0, 1, 2, 3].map((i) => `((w.w${i} + (w.w${i} >> 8)) & 31)`).join(' + ')} <= $11)`,
      [fp.owner, fp.sha256, ...parts, ...hashParts(fp.hash), NEAR_DUPLICATE_DISTANCE],
    );
    return rows;
  }

  /** Registers a finished job for later lookups (or removes it: failed, cancelled), keeping its place in the order. */
  private async registerIn(c: Queryable, jobId: string, fp: Fingerprint | null, listed: number): Promise<void> {
    if (!fp) {
      await c.query('DELETE FROM job_hashes WHERE job_id = $1', [jobId]);
      return;
    }
    const parts = fp.hash ? hashParts(fp.hash) : [null, null, null, null];
    await c.query(
      `INSERT INTO job_hashes (job_id, owner, sha256, hash, p0, p1, p2, p3, listed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner, sha256 = excluded.sha256, hash = excluded.hash,
           p0 = excluded.p0, p1 = excluded.p1, p2 = excluded.p2, p3 = excluded.p3, listed = excluded.listed`,
      [jobId, fp.owner, fp.sha256, fp.hash, ...parts, listed],
    );
  }

  async index(jobId: string, text: SearchText): Promise<void> {
    await retryOnConnectionLoss(() => this.indexIn(this.pool, jobId, text));
  }

  /** Replaces the job's search row; nothing for a job that no longer exists (deleted while it was being indexed). */
  private async indexIn(c: Queryable, jobId: string, { name, body }: SearchText): Promise<void> {
    await c.query(
      `INSERT INTO job_search (job_id, name, body) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1)
       ON CONFLICT (job_id) DO UPDATE SET name = EXCLUDED.name, body = EXCLUDED.body`,
      [jobId, name, body],
    );
  }

  async search(query: string, filter: JobFilter, limit: number, cursor?: string): Promise<SearchPage> {
    const offset = cursor === undefined ? 0 : decodeSearchCursor(cursor);
    if (offset === null) throw new InvalidCursor();
    const words = queryWords(query);
    if (words.length === 0) return { jobs: [], matches: [], nextCursor: null };
    limit = Math.min(limit, MAX_SEARCH_PAGE);
    const args: (string | number)[] = [];
    const param = (value: string | number): string => `$${args.push(value)}`;
    const q = `to_tsquery('media_search', ${param(tsQuery(words))})`;
    const where = [`s.document @@ ${q}`];
    if (filter.status) where.push(`j.status = ${param(filter.status)}`);
    if (filter.fileType) where.push(`j.file_type = ${param(filter.fileType)}`);
    if (filter.user) where.push(`j.user_id = ${param(filter.user)}`);
    if (filter.duplicates !== undefined) where.push(duplicatesFilter('j.id', filter.duplicates));
    const options = param(`StartSel=${MATCH_START}, StopSel=${MATCH_END}, MaxWords=24, MinWords=10`);
    // The newest matching jobs (which ones match is all the index is asked), those alone ranked (a word in the name
    // or a person's name weighs ten times one in the text), then a headline for the page's jobs only, from the start
    // of their text: ts_headline re-reads what it is given, 40-70 ms for 200,000 characters.
    const text = `SELECT j.id, j.doc,
              ts_headline('media_search', concat_ws(' — ', s.name, nullif(s.people, ''), left(s.body, ${SNIPPET_CHARS})), ${q},
                          ${options}) AS snippet
         FROM (SELECT c.job_id, c.created_at, ts_rank_cd('{0.1, 0.1, 0.1, 1.0}', s.document, ${q}) AS rank
                 FROM (SELECT s.job_id, j.created_at FROM job_search s JOIN jobs j ON j.id = s.job_id
                        WHERE ${where.join(' AND ')}
                        ORDER BY j.created_at DESC, j.id DESC LIMIT ${param(MAX_SEARCH_DEPTH)}) c
                 JOIN job_search s ON s.job_id = c.job_id
                ORDER BY rank DESC, c.created_at DESC, c.job_id DESC
                LIMIT ${param(limit + 1)} OFFSET ${param(offset)}) hits
         JOIN job_search s ON s.job_id = hits.job_id JOIN jobs j ON j.id = hits.job_id
        ORDER BY hits.rank DESC, hits.created_at DESC, j.id DESC`;
    const rows = await this.searchQuery<{ id: string; doc: JobDocument; snippet: string }>(text, args);
    const page = rows.slice(0, limit);
    return {
      jobs: page.map((r) => r.doc),
      matches: page.map((r) => ({ id: r.id, snippet: snippetParts(r.snippet) })),
      nextCursor: rows.length > limit && offset + limit < MAX_SEARCH_DEPTH ? encodeSearchCursor(offset + limit) : null,
    };
  }

  /** A search's query: on the search pool, in turn (SearchGate), stopped by PostgreSQL past the time budget. */
  private async searchQuery<R extends pg.QueryResultRow>(text: string, args: unknown[]): Promise<R[]> {
    const release = await this.searchGate.acquire();
    try {
      this.searchPool ??= postgresPool(this.pool.options.connectionString!, {
        schema: this.schema,
        maxConnections: this.searchLimits.concurrency,
      });
      const client = await this.searchPool.connect();
      let broken = false;
      try {
        await client.query('BEGIN READ ONLY');
        await client.query(`SET LOCAL statement_timeout = ${Math.trunc(this.searchLimits.timeoutMs)}`);
        const { rows } = await client.query<R>(text, args);
        await client.query('COMMIT');
        return rows;
      } catch (err) {
        broken = await client.query('ROLLBACK').then(
          () => false,
          () => true,
        );
        if ((err as { code?: string }).code === QUERY_CANCELED) throw this.searchGate.timeout();
        throw err;
      } finally {
        // A connection that cannot even roll back is closed rather than handed to the next search.
        client.release(broken);
      }
    } finally {
      release();
    }
  }

  async endBeforeStart(input: JobInput, status: 'failed' | 'cancelled', error: JobError): Promise<JobDocument> {
    await this.saveFinished(notStarted(input, status, error));
    return (await this.get(input.jobId))!;
  }

  async reopen(jobId: string, retry: RetryOptions): Promise<JobDocument | null> {
    return this.transaction(async (c) => {
      await this.updateIn(c, jobId, reopenChange);
      await c.query('UPDATE jobs SET retry = $1 WHERE id = $2', [JSON.stringify(retry), jobId]);
      return this.getIn(c, jobId);
    });
  }

  async getRequestHash(jobId: string): Promise<string | null> {
    const { rows } = await this.query<{ hash: string | null }>('SELECT request_hash AS hash FROM jobs WHERE id = $1', [
      jobId,
    ]);
    return rows[0]?.hash ?? null;
  }

  async getRetry(jobId: string): Promise<RetryOptions | null> {
    const { rows } = await this.query<{ retry: RetryOptions | null }>('SELECT retry FROM jobs WHERE id = $1', [jobId]);
    return rows[0]?.retry ?? null;
  }

  setWebhook(jobId: string, delivery: WebhookDelivery): Promise<void> {
    return this.update(jobId, webhookChange(delivery));
  }

  async aiUsed(use: AiUse): Promise<void> {
    await this.query(
      `INSERT INTO ai_usage (job_id, step, capability, provider, model, input_tokens, output_tokens, calls,
       latency_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
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
      ],
    );
  }

  async aiUsageTotals(): Promise<AiUsageTotal[]> {
    // SUM of BIGINT is NUMERIC, which pg hands back as a string: cast to float8 (exact far beyond any token count).
    const { rows } = await this.query<AiUsageTotal>(
      `SELECT provider, model, capability, SUM(input_tokens)::float8 AS "inputTokens",
       SUM(output_tokens)::float8 AS "outputTokens", SUM(calls)::float8 AS calls,
       SUM(latency_ms)::float8 AS "latencyMs" FROM ai_usage GROUP BY provider, model, capability
       ORDER BY provider, model, capability`,
    );
    return rows;
  }

  async stepStarted(jobId: string, step: AnyStepName, attempt: number): Promise<number> {
    const { rows } = await this.query<{ id: string }>(
      `INSERT INTO step_runs (job_id, step, attempt, pid, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5)
       RETURNING id`,
      [jobId, step, attempt, process.pid, new Date().toISOString()],
    );
    return Number(rows[0]!.id);
  }

  async stepEnded(runId: number, status: StepStatus, errorCode?: string): Promise<void> {
    await this.query('UPDATE step_runs SET status = $1, error_code = $2, finished_at = $3 WHERE id = $4', [
      status,
      errorCode ?? null,
      new Date().toISOString(),
      runId,
    ]);
  }

  async runs(jobId: string): Promise<StepRun[]> {
    const { rows } = await this.query<StepRun & { id: string }>(
      `SELECT id, job_id AS "jobId", step, attempt, pid, status, error_code AS "errorCode", started_at AS "startedAt",
       finished_at AS "finishedAt" FROM step_runs WHERE job_id = $1 ORDER BY id`,
      [jobId],
    );
    return rows.map((r) => ({ ...r, id: Number(r.id) }));
  }

  async events(jobId: string, afterId = 0): Promise<JobEvent[]> {
    const { rows } = await this.query<JobEvent & { id: string }>(
      `SELECT id, type, data, created_at AS "createdAt" FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id`,
      [jobId, afterId],
    );
    return rows.map((r) => ({ ...r, id: Number(r.id) }));
  }

  async unsettled(changedBefore: string, limit: number, after?: UnsettledCursor): Promise<JobDocument[]> {
    const { rows } = await this.query<{ doc: JobDocument }>(
      `SELECT doc FROM jobs WHERE status = ANY($1) AND updated_at < $2 AND (updated_at, id) > ($3, $4)
        ORDER BY updated_at, id LIMIT $5`,
      [[...UNSETTLED_STATUSES], changedBefore, after?.updatedAt ?? '', after?.id ?? '', limit],
    );
    return rows.map((r) => r.doc);
  }

  async list(filter: JobFilter, limit: number, cursor?: string): Promise<JobPage> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    /** `value` as the query's next parameter. */
    const param = (value: string | number): string => `$${args.push(value)}`;
    if (filter.status) where.push(`status = ${param(filter.status)}`);
    if (filter.fileType) where.push(`file_type = ${param(filter.fileType)}`);
    if (filter.user) where.push(`user_id = ${param(filter.user)}`);
    if (filter.duplicates !== undefined) where.push(duplicatesFilter('id', filter.duplicates));
    const after = cursor === undefined ? null : decodeCursor(cursor);
    if (cursor !== undefined && !after) throw new InvalidCursor();
    if (after) where.push(`(created_at, id) < (${param(after.createdAt)}, ${param(after.id)})`);
    const { rows } = await this.query<{ id: string; createdAt: string; doc: JobDocument }>(
      `SELECT id, created_at AS "createdAt", doc FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT ${param(limit + 1)}`,
      args,
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      jobs: page.map((r) => r.doc),
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  async delete(id: string): Promise<boolean> {
    return this.transaction(async (c) => {
      await c.query('DELETE FROM step_runs WHERE job_id = $1', [id]);
      await c.query('DELETE FROM job_events WHERE job_id = $1', [id]);
      await c.query('DELETE FROM job_search WHERE job_id = $1', [id]);
      await c.query('DELETE FROM job_hashes WHERE job_id = $1', [id]);
      // The job's row first: a recordFaces holding it (FOR SHARE) commits before this goes on and sees its faces.
      const deleted = ((await c.query('DELETE FROM jobs WHERE id = $1', [id])).rowCount ?? 0) > 0;
      await deleteJobFacesIn(c, id);
      return deleted;
    });
  }

  async countByStatus(): Promise<Record<string, number>> {
    const { rows } = await this.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM jobs GROUP BY status',
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async countFailuresByCode(): Promise<Record<string, number>> {
    const { rows } = await this.query<{ code: string | null; n: number }>(
      `SELECT doc->'error'->>'code' AS code, count(*)::int AS n FROM jobs WHERE status = 'failed' GROUP BY code`,
    );
    return Object.fromEntries(rows.map((r) => [r.code ?? 'UNKNOWN', r.n]));
  }

  async stepDurations(limit = 1000): Promise<StepDuration[]> {
    const { rows } = await this.query<{ doc: JobDocument }>(
      'SELECT doc FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT $1',
      [limit],
    );
    return durationsOf(rows.map((r) => r.doc));
  }

  /**
   * One connection of its own that LISTENs (with TCP keepalive, so a connection a NAT dropped in silence ends). When
   * it drops, it reconnects every second until stopped, and tells the listener that anything may have changed
   * (`null`): events committed meanwhile were not notified.
   */
  async watchEvents(listener: (jobId: string | null) => void): Promise<() => Promise<void>> {
    let client: pg.Client | null = null;
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    let connecting: Promise<void> = Promise.resolve();
    const reconnect = (): void => {
      client = null;
      if (stopped) return;
      retry = setTimeout(() => {
        connecting = connect().then(() => listener(null), reconnect);
      }, 1000);
      retry.unref();
    };
    const connect = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: this.pool.options.connectionString, keepAlive: true });
      c.on('error', () => undefined);
      c.on('notification', (msg) => {
        if (msg.channel === this.channel && msg.payload) listener(msg.payload);
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${c.escapeIdentifier(this.channel)}`);
      } catch (err) {
        await c.end().catch(() => undefined);
        throw err;
      }
      // Stopped while connecting: this connection is not wanted any more.
      if (stopped) return void (await c.end().catch(() => undefined));
      client = c;
      c.once('end', reconnect);
    };
    await connect();
    const stop = async (): Promise<void> => {
      stopped = true;
      clearTimeout(retry);
      this.watchers.delete(stop);
      await connecting.catch(() => undefined);
      await client?.end().catch(() => undefined);
    };
    this.watchers.add(stop);
    return stop;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    for (const stop of [...this.watchers]) await stop();
    await this.searchPool?.end();
    await this.pool.end();
  }

  /**
   * `work` in one transaction, on a connection of its own; all of it again on a new connection when the connection is
   * lost (every transaction here is safe to repeat: see retry.ts). A broken connection is dropped from the pool, not
   * handed to the next caller.
   */
  private transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return retryOnConnectionLoss(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (isConnectionLoss(err)) broken = err as Error;
        else await client.query('ROLLBACK').catch((e: unknown) => (broken = e as Error));
        throw err;
      } finally {
        client.release(broken);
      }
    });
  }

  /** One statement on any pooled connection, tried again when the connection is lost. */
  private query<R extends pg.QueryResultRow>(sql: string, args?: unknown[]): Promise<pg.QueryResult<R>> {
    return retryOnConnectionLoss(() => this.pool.query<R>(sql, args));
  }

  private async getIn(db: Queryable, id: string, lock = false): Promise<JobDocument | null> {
    const { rows } = await db.query<{ doc: JobDocument }>(
      `SELECT doc FROM jobs WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return rows[0]?.doc ?? null;
  }

  /** Inside a transaction: the job, created as `queued` (with its event) only if no one created it first. */
  private async createOrGetIn(c: pg.PoolClient, input: JobInput, requestHash?: string): Promise<JobDocument> {
    const doc = newJobDocument(input);
    const inserted = await c.query(
      `INSERT INTO jobs (id, status, user_id, priority, input, doc, created_at, updated_at, request_hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (id) DO NOTHING`,
      [
        doc.id,
        doc.status,
        doc.user?.id ?? null,
        doc.priority,
        JSON.stringify(input),
        JSON.stringify(doc),
        doc.createdAt,
        requestHash ?? null,
      ],
    );
    if ((inserted.rowCount ?? 0) > 0) {
      await this.appendEvent(c, doc.id, 'status', { status: doc.status });
      // Found by its name from the start; its words join when it finishes.
      await this.indexIn(c, doc.id, searchTextOf(doc.file.name, {}));
      return doc;
    }
    return (await this.getIn(c, input.jobId)) ?? doc;
  }

  private async appendEvent(
    c: pg.PoolClient,
    jobId: string,
    type: JobEvent['type'],
    data: Record<string, unknown>,
  ): Promise<void> {
    // The notification goes out when the transaction commits, so a watcher never reads ahead of the events.
    await c.query(
      `WITH e AS (INSERT INTO job_events (job_id, type, data, created_at) VALUES ($1, $2, $3, $4) RETURNING job_id)
       SELECT pg_notify($5, job_id) FROM e`,
      [jobId, type, JSON.stringify(data), new Date().toISOString(), this.channel],
    );
  }

  private update(id: string, mutate: (doc: JobDocument) => void, create?: JobInput): Promise<void> {
    return this.transaction((c) => this.updateIn(c, id, mutate, create));
  }

  /** Read-modify-write of one document and its events; the row stays locked until the transaction ends. */
  private async updateIn(
    c: pg.PoolClient,
    id: string,
    mutate: (doc: JobDocument) => void,
    create?: JobInput,
  ): Promise<void> {
    let doc = await this.getIn(c, id, true);
    if (!doc && create) {
      await this.createOrGetIn(c, create);
      doc = await this.getIn(c, id, true);
    }
    if (!doc) return;
    const before = structuredClone(doc);
    mutate(doc);
    for (const event of changeEvents(before, doc)) await this.appendEvent(c, id, event.type, event.data);
    doc.updatedAt = new Date().toISOString();
    await c.query(
      'UPDATE jobs SET status = $1, file_type = $2, doc = $3, updated_at = $4, finished_at = $5 WHERE id = $6',
      [doc.status, doc.fileType, JSON.stringify(doc), doc.updatedAt, doc.finishedAt, id],
    );
  }
}
