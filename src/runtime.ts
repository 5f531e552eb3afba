/**
 * Builds the parts of an in-process (inline dispatch) orchestrator from a Config: the job store and checkpointer
 * (openStores), step dependencies, compiled graph and runner. Used by the CLI, Studio, tests and benchmarks.
 */
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import type { Config } from './config.js';
import { compileGraph, type JobGraph, type StepEvents } from './graph/graph.js';
import { inlineDispatcher, type Dispatcher } from './graph/dispatcher.js';
import { JobRunner } from './graph/runner.js';
import { loadWorkflow, type Workflow } from './graph/workflow.js';
import { createLogger, type Logger } from './lib/log.js';
import { describeError } from './lib/errors.js';
import { createDeps, indexFullText, pluginStepFns, type Deps } from './nodes/index.js';
import type { FinishedJob } from './lib/types.js';
import { StepPool, threadExecute } from './queue/step-pool.js';
import { openStores, type JobStore } from './store/index.js';

export interface Runtime {
  config: Config;
  log: Logger;
  store: JobStore;
  checkpointer: BaseCheckpointSaver;
  deps: Deps;
  /** The built-in steps and the plugin steps (PLUGINS) this runtime runs. */
  workflow: Workflow;
  graph: JobGraph;
  runner: JobRunner;
  /** Subscribes to every step transition of every job this runtime runs; returns an unsubscribe function. */
  onStep(listener: StepEvents['stepChanged']): () => void;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /**
   * How steps run. By default in this process, each execution in a step thread with its memory ceiling and a time
   * limit that can stop it, so a file that exhausts a step fails the step, not the process.
   */
  dispatcher?: (deps: Deps) => Dispatcher;
  /** The workflow, when the caller has loaded it already (the service shares one between its roles). */
  workflow?: Workflow;
}

export async function createRuntime(
  config: Config,
  log: Logger = createLogger(config.logLevel),
  opts: RuntimeOptions = {},
): Promise<Runtime> {
  // Plugins first: a module that does not load stops start-up before any database is opened.
  const workflow = opts.workflow ?? (await loadWorkflow(config));
  const stores = await openStores(config);
  const { store, checkpointer } = stores;
  const deps = createDeps(config, store, log, pluginStepFns(workflow.plugins));
  const listeners = new Set<StepEvents['stepChanged']>();
  const events: StepEvents = {
    stepChanged: async (jobId, step, record) => {
      await store.stepChanged(jobId, step, record);
      for (const listener of listeners) await listener(jobId, step, record);
    },
  };
  let pool: StepPool | null = null;
  if (!opts.dispatcher) {
    // Two threads, for the graph's two parallel branches (posterFrame ∥ extractAudio, …); the first boots while the
    // graph compiles, the second when a branch needs it.
    pool = new StepPool(2, config, log.child({ pool: 'inline' }));
    void pool.warm();
  }
  const dispatcher = opts.dispatcher
    ? opts.dispatcher(deps)
    : inlineDispatcher(() => deps, threadExecute(pool!), workflow);
  const finished = async (job: FinishedJob): Promise<void> => {
    // Search works from the document's excerpts without it: a job is never failed for its index.
    await indexFullText(job, store, deps.artifacts).catch((err: unknown) =>
      log.warn({ jobId: job.jobId, err: describeError(err).message }, 'could not index the job for search'),
    );
    // What executions killed during a step staged: no execution of the job is left to commit it.
    await deps.artifacts
      .removeStaging(job.jobId)
      .then((n) => n > 0 && log.info({ jobId: job.jobId, folders: n }, "removed killed executions' staging folders"))
      .catch((err: unknown) =>
        log.warn({ jobId: job.jobId, err: describeError(err).message }, 'could not remove staging folders'),
      );
  };
  const graph = compileGraph(
    { dispatcher, sink: store, disabledSteps: config.disabledSteps, events, finished, workflow },
    checkpointer,
  );
  return {
    config,
    log,
    store,
    checkpointer,
    deps,
    workflow,
    graph,
    runner: new JobRunner(graph, checkpointer, store, { profiles: config.profiles, duplicates: config.duplicates }),
    onStep: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: async () => {
      await pool?.destroy();
      await stores.close();
    },
  };
}
