/** Liveness, readiness, Prometheus metrics and the workflow graph. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import { toMermaid } from '../../graph/mermaid.js';
import type { AiUsageTotal } from '../../store/index.js';
import type { ApiParts } from '../http.js';

const STEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

export function systemRoutes(parts: ApiParts): FastifyPluginAsyncZod {
  const { redis, taskQueues, producer } = parts;
  const { store } = parts.stores;
  const registry = new Registry();
  // Every figure is read from the shared job store and Redis at scrape time, so any API process reports the whole
  // installation, not only the work it did itself. The store's figures are read once per scrape, before collecting.
  let scraped: {
    byStatus: Record<string, number>;
    failures: Record<string, number>;
    ai: AiUsageTotal[];
  } = { byStatus: {}, failures: {}, ai: [] };
  new Gauge({
    name: 'media_jobs',
    help: 'Jobs in the job store by status',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [status, n] of Object.entries(scraped.byStatus)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'media_job_failures',
    help: 'Failed jobs by error code',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of Object.entries(scraped.failures)) this.set({ code }, n);
    },
  });
  new Gauge({
    name: 'media_queue_depth',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const queue of [producer.queue, ...taskQueues]) {
        const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed');
        for (const [state, n] of Object.entries(counts)) this.set({ queue: queue.name, state }, n);
      }
    },
  });
  // Model spending, from the ai_usage table every worker writes: counters that only grow, read at scrape time.
  new Counter({
    name: 'media_ai_tokens_total',
    help: 'Tokens sent to (kind="input") and received from (kind="output") AI models',
    labelNames: ['provider', 'model', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of scraped.ai) {
        this.inc({ provider: t.provider, model: t.model, kind: 'input' }, t.inputTokens);
        this.inc({ provider: t.provider, model: t.model, kind: 'output' }, t.outputTokens);
      }
    },
  });
  new Counter({
    name: 'media_ai_requests_total',
    help: 'Requests to AI models (offline models count their runs)',
    labelNames: ['provider', 'model', 'capability'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of scraped.ai) this.inc({ provider: t.provider, model: t.model, capability: t.capability }, t.calls);
    },
  });
  new Counter({
    name: 'media_ai_request_seconds_total',
    help: 'Time spent waiting for AI models; divided by media_ai_requests_total: the mean request latency',
    labelNames: ['provider', 'model', 'capability'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of scraped.ai)
        this.inc({ provider: t.provider, model: t.model, capability: t.capability }, t.latencyMs / 1000);
    },
  });
  const durations = new Histogram({
    name: 'media_step_duration_seconds',
    help: 'Step durations of the last 1000 finished jobs',
    labelNames: ['step', 'status'],
    buckets: STEP_BUCKETS,
    registers: [registry],
  });

  return async (app) => {
    app.get(
      '/healthz',
      {
        schema: {
          summary: 'The process is alive (the command line recognises a service of ours by `service`)',
          response: { 200: z.object({ ok: z.literal(true), service: z.literal('media-orchestrator') }) },
        },
      },
      () => ({ ok: true as const, service: 'media-orchestrator' as const }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          summary: 'Redis and the database answer',
          response: {
            200: z.object({ redis: z.boolean(), database: z.boolean() }),
            503: z.object({ redis: z.boolean(), database: z.boolean() }),
          },
        },
      },
      async (_req, reply) => {
        const redisOk = await Promise.race([
          redis.ping().then(
            (r) => r === 'PONG',
            () => false,
          ),
          new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
        ]);
        const databaseOk = await Promise.race([
          store.ping().then(
            () => true,
            () => false,
          ),
          new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
        ]);
        return reply.status(redisOk && databaseOk ? 200 : 503).send({ redis: redisOk, database: databaseOk });
      },
    );

    app.get(
      '/metrics',
      { schema: { summary: 'Prometheus metrics', response: { 200: z.string() } } },
      async (_req, reply) => {
        const [byStatus, failures, ai, stepDurations] = await Promise.all([
          store.countByStatus(),
          store.countFailuresByCode(),
          store.aiUsageTotals(),
          store.stepDurations(),
        ]);
        scraped = { byStatus, failures, ai };
        durations.reset();
        for (const d of stepDurations) durations.observe({ step: d.step, status: d.status }, d.seconds);
        return reply.header('content-type', registry.contentType).send(await registry.metrics());
      },
    );

    app.get(
      '/summary',
      {
        schema: {
          summary: 'Jobs by status, and failed jobs by error code (what the dashboard shows above its list)',
          response: {
            200: z.object({
              byStatus: z.record(z.string(), z.number()),
              failuresByCode: z.record(z.string(), z.number()),
            }),
          },
        },
      },
      async () => {
        const [byStatus, failuresByCode] = await Promise.all([store.countByStatus(), store.countFailuresByCode()]);
        return { byStatus, failuresByCode };
      },
    );

    app.get(
      '/graph',
      { schema: { summary: 'The workflow as Mermaid', response: { 200: z.string() } } },
      async (_req, reply) =>
        reply.header('content-type', 'text/plain; charset=utf-8').send(await toMermaid(parts.workflow)),
    );
  };
}
