/**
 * `media-orchestrator start`: the roles of the service in this process. `all` (npm start) runs the orchestrator and
 * workers for every task queue; `orchestrator` and `worker` split them across processes and machines that share
 * Redis (and, for the orchestrator, DATA_DIR).
 */
import type { Config, QueueName } from './config.js';
import type { Logger } from './lib/log.js';
import { startOrchestrator, type Orchestrator } from './queue/orchestrator.js';
import { QueuedDispatcher } from './queue/queued-dispatcher.js';
import { ensureRedis } from './queue/redis-server.js';
import { startTaskWorkers, type TaskWorkers } from './queue/task-worker.js';
import { createRuntime, type Runtime } from './runtime.js';

export const ROLES = ['all', 'orchestrator', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface Service {
  redisUrl: string;
  runtime: Runtime | null;
  /** Stops taking work, drains within SHUTDOWN_TIMEOUT_MS, closes every connection. */
  stop(): Promise<void>;
}

export async function startService(
  config: Config,
  log: Logger,
  opts: { role: Role; queues: readonly QueueName[] },
): Promise<Service> {
  const redis = await ensureRedis(config, log);
  let runtime: Runtime | null = null;
  let dispatcher: QueuedDispatcher | null = null;
  let orchestrator: Orchestrator | null = null;
  let workers: TaskWorkers | null = null;
  try {
    if (opts.role === 'all' || opts.role === 'orchestrator') {
      const queued = new QueuedDispatcher(config, redis.url, log);
      dispatcher = queued;
      await queued.ready();
      runtime = createRuntime(config, log, { dispatcher: () => queued });
      orchestrator = await startOrchestrator(runtime, redis.url);
    }
    if (opts.role === 'all' || opts.role === 'worker') {
      workers = await startTaskWorkers(config, redis.url, opts.queues, log);
    }
  } catch (err) {
    await dispatcher?.close().catch(() => undefined);
    runtime?.close();
    await redis.stop();
    throw err;
  }
  log.info({ role: opts.role, redis: redis.url.replace(/\/\/[^@]*@/, '//***@') }, 'media-orchestrator started');
  return {
    redisUrl: redis.url,
    runtime,
    async stop() {
      await orchestrator?.close(config.shutdownTimeoutMs);
      await workers?.close(config.shutdownTimeoutMs);
      await dispatcher?.close();
      runtime?.close();
      await redis.stop();
      log.info('media-orchestrator stopped');
    },
  };
}
