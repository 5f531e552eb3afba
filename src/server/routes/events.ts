/** GET /jobs/:id/events: a job's step and status events as Server-Sent Events, resumable with Last-Event-ID. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TERMINAL_STATUSES, type JobDocument } from '../../lib/types.js';
import type { JobService } from '../../service/job-service.js';
import { JobEventWaiters, type Armed } from '../event-waiters.js';
import { HttpError, type ApiParts } from '../http.js';
import { ErrorBody, JobIdParams } from '../schemas.js';

/** A stream re-reads its job at least this often, notified or not (a missed notification, a deleted job). */
const SSE_REREAD_MS = 5000;

export function eventRoutes(parts: ApiParts, jobs: JobService): FastifyPluginAsyncZod {
  const { config } = parts;
  const { store } = parts.stores;
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
  const found = (id: string) => jobs.get(id);
  let openStreams = 0;
  const waiters = new JobEventWaiters(store, parts.log);
  return async (app) => {
    // Before the server waits for open connections: streams end at once and their clients reconnect elsewhere,
    // instead of holding a draining node open until SSE_MAX_AGE_MS.
    app.addHook('preClose', () => waiters.close());
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
