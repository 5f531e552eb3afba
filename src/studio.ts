/**
 * The graph for LangGraph Studio (`npm run studio`, named in langgraph.json). Compiled without a checkpointer (the
 * LangGraph API server brings its own). At import, only the configuration is read and PLUGINS loaded (the graph's
 * shape depends on them); the database is opened on the first step that runs. Steps run inline and finished jobs land in DATA_DIR's job store as usual.
 */
import { loadConfig, type Config } from './config.js';
import { compileGraph } from './graph/graph.js';
import { inlineDispatcher } from './graph/dispatcher.js';
import { JobIdConflict, sourceConflict } from './graph/runner.js';
import { loadWorkflow } from './graph/workflow.js';
import { effectiveInstructions } from './lib/instructions.js';
import type { FinishedJob } from './lib/types.js';
import type { JobSink } from './nodes/index.js';
import { createRuntime, type Runtime } from './runtime.js';

let config: Config | null = null;
const getConfig = (): Config => (config ??= loadConfig());
const workflow = await loadWorkflow(getConfig());
let runtime: Promise<Runtime> | null = null;
/** Opened on first use; a failed opening (the database was down) is tried again by the next step, not kept. */
const getRuntime = (): Promise<Runtime> =>
  (runtime ??= createRuntime(getConfig(), undefined, { workflow }).catch((err: unknown) => {
    runtime = null;
    throw err;
  }));

const sink: JobSink = {
  // Studio's input skips the intake schema: a run without a file (validate fails it INVALID_INPUT) is still stored.
  saveFinished: async (job: FinishedJob) =>
    (await getRuntime()).store.saveFinished(
      typeof job.file?.path === 'string' ? job : { ...job, file: { path: '(none)', name: '(no file)' } },
    ),
  stepStarted: async (jobId, step, attempt) => (await getRuntime()).store.stepStarted(jobId, step, attempt),
  stepEnded: async (runId, status, code) => (await getRuntime()).store.stepEnded(runId, status, code),
  aiUsed: async (use) => (await getRuntime()).store.aiUsed(use),
};

export const graph = compileGraph({
  dispatcher: inlineDispatcher(async () => (await getRuntime()).deps, undefined, workflow),
  sink,
  workflow,
  // A thread's job id given again with another file would mix the two jobs' documents and artifacts.
  claim: async ({ jobId, file, instructions, profile }) => {
    const stored = await (await getRuntime()).store.getInput(jobId);
    const why = stored && sourceConflict(stored, { jobId, file });
    if (why) throw new JobIdConflict(jobId, why);
    return { instructions: effectiveInstructions(instructions, profile, getConfig().profiles) ?? undefined };
  },
  events: {
    stepChanged: async (jobId, step, record) => {
      const { store } = await getRuntime();
      // Studio runs start at the graph, not through the runner: make sure the job has a row.
      if (!(await store.get(jobId))) return;
      await store.stepChanged(jobId, step, record);
    },
  },
  get disabledSteps() {
    return getConfig().disabledSteps;
  },
});
