/**
 * `media-orchestrator start`: the roles of the service in this process. `all` (npm start) runs the HTTP API, the
 * orchestrator and workers for every task queue; `api`, `orchestrator` and `worker` split them across processes and
 * machines that share Redis (and DATA_DIR).
 */
import type { Config } from './config.js';
import { loadWorkflow, type Workflow } from './graph/workflow.js';
import type { Logger } from './lib/log.js';
import { startOrchestrator, type Orchestrator } from './queue/orchestrator.js';
import { QueuedDispatcher } from './queue/queued-dispatcher.js';
import { ensureRedis } from './queue/redis-server.js';
import { startTaskWorkers, type TaskWorkers } from './queue/task-worker.js';
import { createRuntime, type Runtime } from './runtime.js';
import { startApi, type Api } from './server/api.js';

export const ROLES = ['all', 'api', 'orchestrator', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface Service {
  redisUrl: string;
  /** The API's address when this process runs the `api` role. */
  apiUrl: string | null;
  runtime: Runtime | null;
  /** Stops taking work, drains within SHUTDOWN_TIMEOUT_MS, closes every connection. */
  stop(): Promise<void>;
}

export async function startService(
  config: Config,
  log: Logger,
  opts: { role: Role; queues: readonly string[]; workflow?: Workflow },
): Promise<Service> {
  // Every role knows the plugin steps: workers run them, the orchestrator routes to them, the API draws them.
  const workflow = opts.workflow ?? (await loadWorkflow(config));
  const redis = await ensureRedis(config, log);
  let runtime: Runtime | null = null;
  let dispatcher: QueuedDispatcher | null = null;
  let orchestrator: Orchestrator | null = null;
  let workers: TaskWorkers | null = null;
  let api: Api | null = null;
  try {
    // Workers first: they warm their step threads before taking tasks, and the orchestrator then dispatches the
    // first job's steps to threads that are ready for them.
    if (opts.role === 'all' || opts.role === 'worker') {
      workers = await startTaskWorkers(config, redis.url, opts.queues, log, workflow);
    }
    if (opts.role === 'all' || opts.role === 'orchestrator') {
      const queued = new QueuedDispatcher(config, redis.url, log, undefined, workflow);
      dispatcher = queued;
      await queued.ready();
      runtime = await createRuntime(config, log, { dispatcher: () => queued, workflow });
      orchestrator = await startOrchestrator(runtime, redis.url);
    }
    if (opts.role === 'all' || opts.role === 'api') api = await startApi(config, log, redis.url, workflow);
  } catch (err) {
    await orchestrator?.close(0).catch(() => undefined);
    await workers?.close(0).catch(() => undefined);
    await dispatcher?.close().catch(() => undefined);
    await runtime?.close();
    await redis.stop();
    throw err;
  }
  log.info({ role: opts.role, redis: redis.url.replace(/\/\/[^@]*@/, '//***@') }, 'media-orchestrator started');
  return {
    redisUrl: redis.url,
    apiUrl: api?.url ?? null,
    runtime,
    async stop() {
      const t0 = Date.now();
      const stage = (name: string) => log.info({ ms: Date.now() - t0 }, `shutdown: ${name}`);
      await api?.close();
      stage('api closed');
      // Side by side, one deadline: jobs go back to the queue at once while running steps get SHUTDOWN_TIMEOUT_MS to
      // finish (their results are kept in the task queue for the resumed job).
      await Promise.all([
        orchestrator?.close(config.shutdownTimeoutMs).then(() => stage('orchestrator closed')),
        workers?.close(config.shutdownTimeoutMs).then(() => stage('workers closed')),
      ]);
      await dispatcher?.close();
      await runtime?.close();
      stage('runtime closed');
      await redis.stop();
      log.info('media-orchestrator stopped');
    },
  };
}
