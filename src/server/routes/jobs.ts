/** /jobs: create (upload or path), read, list, cancel, delete, artifacts and the live event stream. */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MultipartFile } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ulid } from 'ulid';
import { z } from 'zod';
import { isInside } from '../../lib/files.js';
import { retryRefusal } from '../../lib/job-document.js';
import type { JobDocument, JobInput } from '../../lib/types.js';
import { TERMINAL_STATUSES } from '../../lib/types.js';
import { insideRoots, JobService } from '../../queue/job-service.js';
import { describeIssues, effectiveInstructions, InstructionsSchema, UnknownProfile } from '../../lib/instructions.js';
import { MAX_PRIORITY, NotifyUrl, Profile } from '../../queue/messages.js';
import { InvalidCursor } from '../../store/index.js';
import { JobEventWaiters, type Armed } from '../event-waiters.js';
import { type ApiParts, hasToken, HttpError, requireToken } from '../http.js';
import { sendFileRange } from '../ranges.js';
import {
  ArtifactParams,
  CreateJobJson,
  DuplicateList,
  ErrorBody,
  JobDocumentSchema,
  JobIdParams,
  JobList,
  ListQuery,
  ReviewBody,
} from '../schemas.js';

const CONTENT_TYPES: Record<string, string> = {
  '.webp': 'image/webp',
  '.jpg': 'image/jpeg',
  '.avif': 'image/avif',
  '.png': 'image/png',
  '.mp3': 'audio/mpeg',
  '.txt': 'text/plain; charset=utf-8',
  '.srt': 'application/x-subrip; charset=utf-8',
  '.vtt': 'text/vtt; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
  '.m3u8': 'application/vnd.apple.mpegurl',
};

/** transcodeVideo's reason when the original plays in browsers as it is (see GET /jobs/:id/original). */
const ORIGINAL_PLAYS = 'no rendition required';

/** Why a write fails when the disk (or the process's share of it) is full. */
const NO_ROOM = ['ENOSPC', 'EDQUOT', 'EFBIG'];

/** A stream re-reads its job at least this often, notified or not (a missed notification, a deleted job). */
const SSE_REREAD_MS = 5000;

export function jobRoutes(parts: ApiParts): FastifyPluginAsyncZod {
  const { config, artifacts, producer } = parts;
  const { store, checkpointer } = parts.stores;
  const auth = requireToken(config);
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

  const jobs = new JobService({
    config,
    store,
    producer,
    redis: parts.redis,
    checkpointer,
    artifacts,
    log: parts.log,
  });
  const found = (id: string): Promise<JobDocument> => jobs.get(id);

  /** Reads are open; where the receiver of a job's webhook is (it may carry a token of its own) is not. */
  const forReader = (stored: JobDocument, req: FastifyRequest): JobDocument => {
    const reason = retryRefusal(stored);
    const doc: JobDocument = { ...stored, retry: { allowed: reason === null, reason } };
    if (!doc.webhook || hasToken(config, req)) return doc;
    const { url: _url, ...delivery } = doc.webhook;
    return { ...doc, webhook: { ...delivery, url: '(hidden: send the API token to see it)' } };
  };

  /** Idempotency-Key → the same job id every time, so a retried request is the same job. */
  const jobIdFor = (key: string | undefined): string =>
    key ? `idem-${createHash('sha256').update(key).digest('hex').slice(0, 40)}` : ulid();

  let openStreams = 0;
  const waiters = new JobEventWaiters(store, parts.log);
  const turns = new Map<string, Promise<unknown>>();
  /** Runs `work` after any other work on `key` in this process has settled. */
  const oneAtATime = async <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const before = turns.get(key) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(work);
    turns.set(key, mine);
    try {
      return await mine;
    } finally {
      if (turns.get(key) === mine) turns.delete(key);
    }
  };

  return async (app) => {
    // Before the server waits for open connections: streams end at once and their clients reconnect elsewhere,
    // instead of holding a draining node open until SSE_MAX_AGE_MS.
    app.addHook('preClose', () => waiters.close());
    app.post(
      '/jobs',
      {
        preHandler: auth,
        // After authentication (the preHandler hook runs after `auth`): refused requests spend nobody's allowance.
        // Keyed by the token when there is one, else by the client address (TRUST_PROXY decides what that is).
        config: {
          rateLimit: {
            max: config.uploadRateLimit,
            timeWindow: '1 minute',
            hook: 'preHandler',
            keyGenerator: (req: FastifyRequest) => (config.apiToken ? `token:${tokenKey(req)}` : `ip:${req.ip}`),
          },
        },
        schema: {
          summary: 'Create a job: multipart upload (field `file`) or JSON naming a file under INPUT_ROOTS',
          description:
            'Multipart fields: `file` (required), `userId`, `priority`, `notifyUrl`. An `Idempotency-Key` header makes retries return the same job.',
          headers: z.object({ 'idempotency-key': z.string().min(1).max(200).optional() }).loose(),
          response: {
            202: JobDocumentSchema,
            413: ErrorBody,
            415: ErrorBody,
            429: ErrorBody,
            503: ErrorBody,
            507: ErrorBody,
            ...errors,
          },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => {
        const key = req.headers['idempotency-key'];
        const jobId = jobIdFor(key);
        // Requests with one key take turns (in this process): the second finds the job the first made, and one
        // upload is stored, not two writing over each other.
        const doc = await oneAtATime(jobId, async () => {
          const known = await store.get(jobId);
          if (!known) {
            const { input, hash } = req.isMultipart()
              ? await fromUpload(req.parts(), jobId)
              : await fromJson(req.body, jobId);
            const created = await jobs.create(input);
            if (key) await store.setRequestHash(jobId, hash);
            return created;
          }
          // The same key again: the same request is the same job; a different one is the client's mistake.
          const hash = req.isMultipart()
            ? (await readUpload(req.parts(), null)).hash
            : (await fromJson(req.body, jobId)).hash;
          const first = await store.getRequestHash(jobId);
          if (first && first !== hash) {
            throw new HttpError(
              422,
              'IDEMPOTENCY_KEY_REUSED',
              'this Idempotency-Key was used for a different request; use a new key for a new job',
            );
          }
          return known;
        });
        return reply.status(202).header('location', `/jobs/${doc.id}`).send(doc);
      },
    );

    /** A profile the job names must be one PROFILES_FILE defines: refused now, not when the job runs. */
    function checkProfile(profile: string | undefined): void {
      if (profile === undefined) return;
      try {
        effectiveInstructions(undefined, profile, config.profiles);
      } catch (err) {
        if (err instanceof UnknownProfile) throw new HttpError(400, 'INVALID_INPUT', err.message);
        throw err;
      }
    }

    /** The multipart fields `instructions` (a JSON object) and `profile`, checked as a message's are. */
    function uploadInstructions(fields: Record<string, string>): Pick<JobInput, 'instructions' | 'profile'> {
      const out: Pick<JobInput, 'instructions' | 'profile'> = {};
      if (fields.instructions !== undefined) {
        let raw: unknown;
        try {
          raw = JSON.parse(fields.instructions);
        } catch {
          throw new HttpError(400, 'INVALID_INPUT', 'instructions: the field must hold a JSON object');
        }
        const parsed = InstructionsSchema.safeParse(raw);
        if (!parsed.success) throw new HttpError(400, 'INVALID_INPUT', describeIssues(parsed.error.issues));
        out.instructions = parsed.data;
      }
      if (fields.profile !== undefined) {
        const parsed = Profile.safeParse(fields.profile);
        if (!parsed.success) throw new HttpError(400, 'INVALID_INPUT', describeIssues(parsed.error.issues));
        checkProfile(parsed.data);
        out.profile = parsed.data;
      }
      return out;
    }

    async function fromJson(raw: unknown, jobId: string): Promise<{ input: JobInput; hash: string }> {
      const parsed = CreateJobJson.safeParse(raw);
      if (!parsed.success) {
        const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
        // The job's own instructions are input to validate like a message's (INVALID_INPUT); the rest is the request.
        const invalid = parsed.error.issues.some((i) => ['instructions', 'profile'].includes(String(i.path[0])));
        throw new HttpError(
          400,
          invalid ? 'INVALID_INPUT' : 'BAD_REQUEST',
          raw === undefined
            ? 'send multipart/form-data or JSON'
            : invalid
              ? describeIssues(parsed.error.issues)
              : detail,
        );
      }
      checkProfile(parsed.data.profile);
      const file = path.resolve(parsed.data.file.path);
      if (!(await insideRoots(config.inputRoots, file)))
        throw new HttpError(400, 'INVALID_INPUT', 'file.path is outside INPUT_ROOTS');
      // The fingerprint of what was asked, after the schema (which bounds its size and depth).
      return {
        input: { jobId, ...parsed.data, file: { ...parsed.data.file, path: file } },
        hash: jsonHash(parsed.data),
      };
    }

    /**
     * Reads a multipart body: its fields, and its one file, streamed into `dir` (or only hashed, when `dir` is null)
     * with a fingerprint of the whole request for Idempotency-Key checks.
     */
    async function readUpload(
      partsIter: AsyncIterableIterator<unknown>,
      dir: string | null,
    ): Promise<{ fields: Record<string, string>; stored: { path: string; name: string } | null; hash: string }> {
      // No prototype: a field may be called anything, `__proto__` included.
      const fields = Object.create(null) as Record<string, string>;
      const digest = createHash('sha256');
      let stored: { path: string; name: string } | null = null;
      let seenFile = false;
      for await (const part of partsIter as AsyncIterableIterator<
        MultipartFile | { type: 'field'; fieldname: string; value: unknown }
      >) {
        if (part.type === 'field') {
          // One plain-text value per field: a second one, or a JSON-typed part (parsed into an object), is refused
          // rather than quietly reduced to one string.
          if (Object.hasOwn(fields, part.fieldname))
            throw new HttpError(400, 'INVALID_INPUT', `the field \`${part.fieldname}\` is given more than once`);
          if (typeof part.value !== 'string')
            throw new HttpError(400, 'INVALID_INPUT', `the field \`${part.fieldname}\` must be plain text`);
          fields[part.fieldname] = part.value;
          continue;
        }
        if (part.fieldname !== 'file' || seenFile) {
          part.file.resume();
          throw new HttpError(400, 'BAD_REQUEST', 'send exactly one file, in the field `file`');
        }
        seenFile = true;
        digest.update(`file:${part.filename}\n`);
        // The bytes are hashed on their way to the disk (or only hashed), never held in memory.
        const tap = new Transform({
          transform(chunk: Buffer, _enc, done) {
            digest.update(chunk);
            done(null, chunk);
          },
        });
        if (dir) {
          const name = safeName(part.filename);
          await fs.mkdir(dir, { recursive: true });
          const target = path.join(dir, name);
          await pipeline(part.file, tap, createWriteStream(target)).catch((err: unknown) => {
            if (NO_ROOM.includes((err as NodeJS.ErrnoException).code ?? ''))
              throw new HttpError(507, 'RESOURCE_LIMIT', 'the server has no room for this upload now; try again later');
            throw err;
          });
          stored = { path: target, name: part.filename || name };
        } else {
          for await (const chunk of part.file) digest.update(chunk as Buffer);
        }
        if (part.file.truncated) {
          throw new HttpError(413, 'PAYLOAD_TOO_LARGE', `the file is over the limit of ${config.maxFileBytes} bytes`);
        }
      }
      for (const k of Object.keys(fields).sort()) digest.update(`field:${k}=${fields[k]}\n`);
      return { fields, stored, hash: digest.digest('hex') };
    }

    async function fromUpload(
      partsIter: AsyncIterableIterator<unknown>,
      jobId: string,
    ): Promise<{ input: JobInput; hash: string }> {
      const dir = path.join(config.uploadsDir, jobId);
      let read;
      try {
        read = await readUpload(partsIter, dir);
      } catch (err) {
        await fs.rm(dir, { recursive: true, force: true });
        throw err;
      }
      const { fields, stored, hash } = read;
      if (!stored) throw new HttpError(400, 'BAD_REQUEST', 'the multipart body has no `file` field');
      const priority = fields.priority === undefined ? undefined : Number(fields.priority);
      if (priority !== undefined && (!/^\d{1,7}$/.test(fields.priority ?? '') || priority > MAX_PRIORITY)) {
        await fs.rm(dir, { recursive: true, force: true });
        throw new HttpError(400, 'BAD_REQUEST', `priority must be a whole number from 0 to ${MAX_PRIORITY}`);
      }
      if (fields.notifyUrl !== undefined && !NotifyUrl.safeParse(fields.notifyUrl).success) {
        await fs.rm(dir, { recursive: true, force: true });
        throw new HttpError(
          400,
          'BAD_REQUEST',
          'notifyUrl must be an http:// or https:// URL (at most 2048 characters)',
        );
      }
      let wishes: Pick<JobInput, 'instructions' | 'profile'>;
      try {
        wishes = uploadInstructions(fields);
      } catch (err) {
        await fs.rm(dir, { recursive: true, force: true });
        throw err;
      }
      return {
        input: {
          jobId,
          file: { path: stored.path, name: stored.name },
          user: fields.userId ? { id: fields.userId.slice(0, 200) } : null,
          ...(priority ? { priority } : {}),
          ...(fields.notifyUrl ? { notifyUrl: fields.notifyUrl } : {}),
          ...wishes,
        },
        hash,
      };
    }

    app.get(
      '/jobs',
      {
        // A search reads the index (a listing reads one page of rows): searches are counted per client address.
        config: {
          rateLimit: {
            max: config.searchRateLimit,
            timeWindow: '1 minute',
            // Before the query is validated: `q` may be anything here (the schema refuses what is not one string).
            allowList: (req: FastifyRequest) => {
              const { q } = req.query as { q?: unknown };
              return typeof q !== 'string' || q.trim() === '';
            },
            keyGenerator: (req: FastifyRequest) => `search:${req.ip}`,
          },
        },
        schema: {
          summary: 'List jobs, newest first; with `q`, search them, best match first',
          querystring: ListQuery,
          response: { 200: JobList, 400: ErrorBody, 429: ErrorBody, 503: ErrorBody },
        },
      },
      async (req) => {
        const { limit, cursor, q, ...filter } = req.query;
        try {
          // An empty box is the plain list, not an empty search.
          const page = await jobs.list({ ...filter, q }, limit, cursor);
          return { ...page, jobs: page.jobs.map((d) => forReader(d, req)) };
        } catch (err) {
          if (err instanceof InvalidCursor) throw new HttpError(400, 'BAD_REQUEST', err.message);
          throw err;
        }
      },
    );

    app.get(
      '/jobs/:id',
      { schema: { summary: 'A job document', params: JobIdParams, response: { 200: JobDocumentSchema, ...errors } } },
      async (req) => {
        const doc = forReader(await found(req.params.id), req);
        return { ...doc, artifacts: await artifacts.list(doc.id) };
      },
    );

    app.get(
      '/jobs/:id/duplicates',
      {
        schema: {
          summary: "A job's duplicates among its owner's jobs, earlier and later",
          description:
            'Jobs of the same owner (user; jobs without one share a scope) with the same bytes (exact, distance 0) or, for images, a perceptual hash within the near threshold; exact first, then the nearest. Empty for a job that has not completed.',
          params: JobIdParams,
          response: { 200: DuplicateList, ...errors },
        },
      },
      async (req) => ({ duplicates: await jobs.duplicates(req.params.id) }),
    );

    app.post(
      '/jobs/:id/cancel',
      {
        preHandler: auth,
        schema: {
          summary: 'Cancel a job',
          description: 'Removes a job that has not started, or stops a running one; 409 for a job that has ended.',
          params: JobIdParams,
          response: { 202: JobDocumentSchema, 409: ErrorBody, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => {
        return reply.status(202).send(await jobs.cancel(req.params.id));
      },
    );

    app.post(
      '/jobs/:id/retry',
      {
        preHandler: auth,
        schema: {
          summary: 'Re-run the failed steps of a finished job',
          description:
            'Steps that succeeded, or were skipped for a reason of their own, keep their results; failed steps and the steps they held back run again. 409 for a job that is not finished or has nothing to retry.',
          params: JobIdParams,
          response: { 202: JobDocumentSchema, 409: ErrorBody, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => {
        return reply.status(202).send(await jobs.retry(req.params.id));
      },
    );

    app.post(
      '/jobs/:id/review',
      {
        preHandler: auth,
        schema: {
          summary: 'Decide the review of a job awaiting_review: approve finishes it, reject ends it rejected',
          description:
            'One decision wins: a job that is not awaiting_review, or was decided meanwhile, answers 409. The job resumes from its checkpoint; no step before the review runs again.',
          params: JobIdParams,
          body: ReviewBody,
          response: { 202: JobDocumentSchema, 409: ErrorBody, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => reply.status(202).send(await jobs.review(req.params.id, req.body)),
    );

    app.delete(
      '/jobs/:id',
      {
        preHandler: auth,
        schema: {
          summary: 'Delete a finished job: its document, checkpoints, upload and artifacts',
          params: JobIdParams,
          response: { 204: z.null(), 409: ErrorBody, ...errors },
          security: [{ bearer: [] }],
        },
      },
      async (req, reply) => {
        await jobs.delete(req.params.id);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/jobs/:id/artifacts/:name',
      {
        schema: {
          summary: 'A file the job produced (thumbnail, text, audio, transcript .txt/.srt/.vtt/.json)',
          params: ArtifactParams,
          description: 'Answers range requests (206) so that players can seek.',
          response: { 200: z.any(), 204: z.null(), 206: z.any(), 416: z.any(), 503: ErrorBody, ...errors },
        },
      },
      async (req, reply) => {
        await found(req.params.id);
        let file: string;
        try {
          file = artifacts.path(req.params.id, req.params.name);
        } catch {
          throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        }
        // Resolve symlinks too: nothing outside the job's folder is ever served.
        const real = await fs.realpath(file).catch(() => null);
        if (!real || !(await isInside(artifacts.dir(req.params.id), real)))
          throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        const stat = await fs.stat(real);
        if (!stat.isFile()) throw new HttpError(404, 'NOT_FOUND', 'no such artifact');
        return sendFileRange(
          req,
          reply,
          real,
          stat.size,
          CONTENT_TYPES[path.extname(real)] ?? 'application/octet-stream',
        );
      },
    );

    app.get(
      '/jobs/:id/original',
      {
        schema: {
          summary: 'The uploaded video itself, when transcodeVideo found that it plays in browsers as it is',
          description:
            'Only for a video whose rendition was not required (H.264/AAC MP4 with faststart, no location ' +
            'tags); answers range requests (206).',
          params: JobIdParams,
          response: { 200: z.any(), 206: z.any(), 416: z.any(), ...errors },
        },
      },
      async (req, reply) => {
        const doc = await found(req.params.id);
        const step = doc.steps.transcodeVideo;
        if (step?.status !== 'skipped' || !step.reason?.startsWith(ORIGINAL_PLAYS))
          throw new HttpError(404, 'NOT_FOUND', 'this job has no original to play: see its rendition');
        // The upload, or the producer's file as the service pinned it: the one file in the job's upload folder.
        const dir = path.join(config.uploadsDir, doc.id);
        const names = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
        const files = names.filter((e) => e.isFile() && !e.name.startsWith('.'));
        if (files.length !== 1) throw new HttpError(404, 'NOT_FOUND', 'the original is not kept by this service');
        const file = path.join(dir, files[0]!.name);
        const stat = await fs.stat(file);
        return sendFileRange(req, reply, file, stat.size, 'video/mp4');
      },
    );

    app.get(
      '/jobs/:id/events',
      {
        schema: {
          summary: 'Server-Sent Events: every step transition, then the terminal status',
          description: 'Reconnect with `Last-Event-ID` (or `?lastEventId=`) to resume without missing events.',
          params: JobIdParams,
          querystring: z.object({ lastEventId: z.coerce.number().int().min(0).optional() }),
          response: { 200: z.any(), 204: z.null(), 503: ErrorBody, ...errors },
        },
      },
      async (req, reply) => {
        const doc = await found(req.params.id);
        const header = Number(req.headers['last-event-id']);
        let after = Number.isInteger(header) && header > 0 ? header : (req.query.lastEventId ?? 0);
        // A reconnect after the terminal event (a browser's EventSource does this when a finished stream closes):
        // nothing more will come, and 204 tells EventSource to stop reconnecting.
        if (TERMINAL_STATUSES.includes(doc.status) && (await store.events(doc.id, after)).length === 0) {
          return reply.status(204).send(null);
        }
        if (openStreams >= config.sseMaxStreams) {
          void reply.header('retry-after', '10');
          throw new HttpError(503, 'UNAVAILABLE', `this server has ${openStreams} event streams open, its limit`);
        }
        openStreams += 1;
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        res.write('retry: 1000\n\n');
        let closed = false;
        let armed: Armed | null = null;
        req.raw.on('close', () => {
          closed = true;
          armed?.wake();
        });
        try {
          const opened = Date.now();
          let lastBeat = opened;
          // Streams end: at the job's terminal event, when the job is deleted, when this server closes, or at
          // SSE_MAX_AGE_MS (a stuck job's stream too); the client then reconnects with Last-Event-ID and misses nothing.
          for (;;) {
            const left = config.sseMaxAgeMs - (Date.now() - opened);
            if (closed || waiters.closing || left <= 0) break;
            let ended = false;
            // Listening before reading: an event committed while this reads wakes the wait below at once.
            armed = await waiters.arm(req.params.id);
            try {
              for (const event of await store.events(req.params.id, after)) {
                res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
                after = event.id;
                if (event.type === 'status' && TERMINAL_STATUSES.includes(event.data.status as JobDocument['status']))
                  ended = true;
              }
              if (ended || !(await store.get(req.params.id))) break;
              if (Date.now() - lastBeat > 15_000) {
                res.write(': keep-alive\n\n');
                lastBeat = Date.now();
              }
              if (!closed) await armed.wait(Math.min(SSE_REREAD_MS, left));
            } finally {
              armed.cancel();
              armed = null;
            }
          }
        } finally {
          openStreams -= 1;
          res.end();
        }
      },
    );
  };
}

/** A file name safe to write: no folders, no leading dots, nothing but ordinary characters. */
function safeName(name: string | undefined): string {
  const base = path
    .basename(name ?? '')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '');
  return base.slice(-120) || 'upload';
}

/** A short, stable name for the bearer token of a request (its hash, never the token itself). */
function tokenKey(req: FastifyRequest): string {
  return createHash('sha256')
    .update(req.headers.authorization ?? '')
    .digest('hex')
    .slice(0, 16);
}

/** A JSON body's fingerprint, whatever the order of its keys. */
function jsonHash(body: unknown): string {
  const stable = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
        )
      : Array.isArray(v)
        ? v.map(stable)
        : v;
  return createHash('sha256')
    .update(JSON.stringify(stable(body) ?? null))
    .digest('hex');
}
