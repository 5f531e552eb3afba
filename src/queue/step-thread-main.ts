/**
 * The body of a step worker thread: builds its own deps (its own job store connection for step_runs) and runs one step
 * at a time for the pool. Terminating the thread is how a step that will not stop is stopped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config.js';
import type { AnyStepName } from '../lib/types.js';
import { failureOf } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { createDeps, executeStep, pluginStepFns, warmSteps } from '../nodes/index.js';
import { loadPlugins } from '../plugins/load.js';
import { openJobStore } from '../store/index.js';
import type { ThreadMessage, ThreadReply, ThreadRequest } from './step-pool.js';

const { config, warm = [] } = workerData as { config: Config; warm?: AnyStepName[] };
const log = createLogger(config.logLevel, 'step-thread');
const store = await openJobStore(config);
// The plugin steps too: the process that started this thread has loaded and checked the same modules.
const deps = createDeps(config, store, log, pluginStepFns(await loadPlugins(config.plugins)));
if (!parentPort) throw new Error('step-thread must run as a worker thread');
const port = parentPort;

const running = new Map<number, AbortController>();

port.on('message', (msg: ThreadMessage) => {
  if (msg.type === 'cancel') {
    running.get(msg.id)?.abort();
    return;
  }
  run(msg);
});
const warmed = await warmSteps(warm, deps);
// Modules loaded and deps built: the pool may send steps now, and only now starts their clocks.
port.postMessage({ type: 'ready', warmed } satisfies ThreadReply);

function run(req: ThreadRequest): void {
  const controller = new AbortController();
  running.set(req.id, controller);
  const opts = {
    attempt: req.attempt,
    timeoutMs: req.timeoutMs,
    timeoutRetryable: req.timeoutRetryable,
    deferSuccessRecord: true,
    signal: controller.signal,
    onStarted: () => port.postMessage({ type: 'started', id: req.id } satisfies ThreadReply),
  };
  executeStep(req.step, req.input, deps, opts)
    .then(
      ({ outcome, runId }) => port.postMessage({ type: 'done', id: req.id, outcome, runId } satisfies ThreadReply),
      // Its run record could not be written: the step did not begin.
      (err: unknown) => {
        log.warn({ err, step: req.step, jobId: req.input.jobId }, 'step could not begin');
        port.postMessage({ type: 'done', id: req.id, outcome: failureOf(err) } satisfies ThreadReply);
      },
    )
    .finally(() => running.delete(req.id));
}
