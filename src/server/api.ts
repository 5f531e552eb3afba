/** The `api` role: opens what the routes need, listens on HOST:PORT, closes everything on stop. */
import { Queue } from 'bullmq';
import { QUEUE_NAMES, type Config } from '../config.js';
import { loadWorkflow, type Workflow } from '../graph/workflow.js';
import { ArtifactStore } from '../lib/artifacts.js';
import type { Logger } from '../lib/log.js';
import { bullConnection, createRedis } from '../queue/connection.js';
import { createProducer } from '../queue/producer.js';
import { openStores } from '../store/index.js';
import { buildApp, type App } from './app.js';
import type { ApiParts } from './http.js';

export interface Api {
  app: App;
  url: string;
  close(): Promise<void>;
}

export async function openApiParts(
  config: Config,
  log: Logger,
  redisUrl: string,
  workflow?: Workflow,
): Promise<ApiParts> {
  const steps = workflow ?? (await loadWorkflow(config));
  const stores = await openStores(config);
  const redis = createRedis(redisUrl, 'worker');
  redis.on('error', (err) => log.warn({ err }, 'api redis error'));
  return {
    config,
    log,
    stores,
    artifacts: new ArtifactStore(config.artifactsDir),
    producer: createProducer({ redisUrl, prefix: config.queuePrefix }),
    redis,
    taskQueues: steps
      .queues(QUEUE_NAMES)
      .map((name) => new Queue(name, { connection: bullConnection(redisUrl, 'producer'), prefix: config.queuePrefix })),
    workflow: steps,
  };
}

export async function closeApiParts(parts: ApiParts): Promise<void> {
  await parts.producer.close();
  await Promise.all(parts.taskQueues.map((q) => q.close()));
  await parts.redis.quit().catch(() => parts.redis.disconnect());
  await parts.stores.close();
}

export async function startApi(config: Config, log: Logger, redisUrl: string, workflow?: Workflow): Promise<Api> {
  const parts = await openApiParts(config, log, redisUrl, workflow);
  let app: Awaited<ReturnType<typeof buildApp>> | null = null;
  let address: string;
  try {
    app = await buildApp(parts);
    address = await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    // A port in use, say: let go of the database pool and Redis, or the process would never exit.
    await app?.close().catch(() => undefined);
    await closeApiParts(parts).catch(() => undefined);
    throw err;
  }
  log.info({ url: address }, 'api listening');
  return {
    app,
    url: address,
    async close() {
      // Open event streams end first (their clients reconnect elsewhere); new requests are refused at once.
      await app.close();
      await closeApiParts(parts);
    },
  };
}
