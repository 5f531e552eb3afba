/** /jobs: create (upload or path), read, list, cancel, retry, review and delete. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ulid } from 'ulid';
import { z } from 'zod';
import { effectiveInstructions, UnknownProfile } from '../../lib/instructions.js';
import { JobRequestSchema, requestFromFields, requestProblem, type JobRequest } from '../../lib/job-input.js';
import { retryRefusal } from '../../lib/job-document.js';
import type { JobDocument, JobInput } from '../../lib/types.js';
import { insideRoots, type JobService } from '../../service/job-service.js';
import { InvalidCursor } from '../../store/index.js';
import { type ApiParts, hasToken, HttpError, requireToken } from '../http.js';
import {
  DuplicateList,
  ErrorBody,
  JobDocumentSchema,
  JobIdParams,
  JobList,
  ListQuery,
  ReviewBody,
} from '../schemas.js';
import type { UploadStore } from '../uploads.js';

export function jobRoutes(parts: ApiParts, jobs: JobService, uploads: UploadStore): FastifyPluginAsyncZod {
  const { config, artifacts } = parts;
  const { store } = parts.stores;
  const auth = requireToken(config);
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

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
          const reused = async (hash: string): Promise<void> => {
            const first = await store.getRequestHash(jobId);
            if (first && first !== hash) {
              throw new HttpError(
                422,
                'IDEMPOTENCY_KEY_REUSED',
                'this Idempotency-Key was used for a different request; use a new key for a new job',
              );
            }
          };
          const known = await store.get(jobId);
          if (!known) {
            const { input, hash } = req.isMultipart()
              ? await fromUpload(req.parts(), jobId)
              : await fromJson(req.body, jobId);
            // The fingerprint is stored with the new job, in one statement: when another server made the job with
            // this key first, from another request, the one it stored differs from this.
            const created = await jobs.create(input, key ? hash : undefined);
            if (key) await reused(hash);
            return created;
          }
          // The same key again: the same request is the same job; a different one is the client's mistake.
          await reused(
            req.isMultipart()
              ? (await uploads.receive(req.parts(), null)).hash
              : (await fromJson(req.body, jobId)).hash,
          );
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

    /**
     * A request as the one input schema reads it, the profile it names defined and, for a file the client names (not
     * one it uploaded), the file under INPUT_ROOTS.
     */
    async function checked(
      raw: unknown,
      jobId: string,
      named: boolean,
    ): Promise<{ input: JobInput; request: JobRequest }> {
      const parsed = JobRequestSchema.safeParse(raw);
      if (!parsed.success) {
        if (raw === undefined) throw new HttpError(400, 'BAD_REQUEST', 'send multipart/form-data or JSON');
        const { code, message } = requestProblem(parsed.error);
        throw new HttpError(400, code, message);
      }
      checkProfile(parsed.data.profile);
      const file = path.resolve(parsed.data.file.path);
      if (named && !(await insideRoots(config.inputRoots, file)))
        throw new HttpError(400, 'INVALID_INPUT', 'file.path is outside INPUT_ROOTS');
      return { input: { ...parsed.data, jobId, file: { ...parsed.data.file, path: file } }, request: parsed.data };
    }

    async function fromJson(raw: unknown, jobId: string): Promise<{ input: JobInput; hash: string }> {
      const { input, request } = await checked(raw, jobId, true);
      // The fingerprint of what was asked, after the schema (which bounds its size and depth).
      return { input, hash: jsonHash(request) };
    }

    /** A multipart body: its file stored in the job's upload folder, its fields read through the same schema. */
    async function fromUpload(
      partsIter: AsyncIterableIterator<unknown>,
      jobId: string,
    ): Promise<{ input: JobInput; hash: string }> {
      const { fields, stored, hash } = await uploads.receive(partsIter, jobId);
      if (!stored) throw new HttpError(400, 'BAD_REQUEST', 'the multipart body has no `file` field');
      try {
        return { input: (await checked(requestFromFields(fields, stored), jobId, false)).input, hash };
      } catch (err) {
        await uploads.discard(jobId);
        throw err;
      }
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
  };
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
