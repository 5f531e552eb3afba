/**
 * The job workflow as a LangGraph StateGraph: nodes, then edges, then compile. Every step node is the same wrapper
 * around a dispatcher, so the graph is identical whether steps run inline or on worker queues.
 */
import {
  END,
  interrupt,
  START,
  StateGraph,
  type BaseCheckpointSaver,
  type LangGraphRunnableConfig,
} from '@langchain/langgraph';
import { ulid } from 'ulid';
import { failureOf } from '../lib/errors.js';
import { isTransient } from '../lib/transient.js';
import { skippedByInstructions, type Instructions } from '../lib/instructions.js';
import { parseDecision, reviewNeeded } from '../lib/review.js';
import type { AnyStepName, FinishedJob, JobError, RetryOptions, StepRecord, StepRecords } from '../lib/types.js';
import { finalize, type JobSink, type StepInput } from '../nodes/index.js';
import type { Dispatcher, StepResult } from './dispatcher.js';
import { BRANCHES, routeAfterValidate, routeByType, routeNext, type Route } from './routing.js';
import { JobInputAnnotation, JobStateAnnotation, type JobState, type JobUpdate } from './state.js';
import { BUILT_IN_WORKFLOW, type Workflow } from './workflow.js';

/** Notified of every step transition (running, then its end), for live status. */
export interface StepEvents {
  stepChanged(jobId: string, step: AnyStepName, record: StepRecord): void | Promise<void>;
}

export interface GraphDeps {
  dispatcher: Dispatcher;
  sink: JobSink;
  disabledSteps?: readonly string[];
  /** The built-in steps and the plugin steps (PLUGINS); the built-in ones alone when absent. */
  workflow?: Workflow;
  events?: StepEvents;
  /**
   * Called before validate, where no JobRunner began the run (LangGraph Studio runs the graph directly): throws when
   * the job id already names a job for another file, so that nothing of that job is written over, or when the job
   * names a profile this service does not define; else gives the instructions the job runs with.
   */
  claim?(
    input: Pick<JobState, 'jobId' | 'file' | 'instructions' | 'profile'>,
  ): Promise<{ instructions: Instructions | undefined }>;
  /** Called with the finished job once it is stored (search indexing of its whole texts); a failure is only logged. */
  finished?(job: FinishedJob): Promise<void>;
}

export function toStepInput(state: JobState, jobId = state.jobId, instructions?: Instructions | null): StepInput {
  return {
    jobId,
    file: state.file,
    user: state.user ?? null,
    ...(state.priority ? { priority: state.priority } : {}),
    ...(retryOf(state) ? { generation: retryOf(state)!.generation } : {}),
    fileInfo: state.fileInfo,
    fileType: state.fileType,
    results: state.results,
    ...(instructions && { instructions }),
  };
}

function retryOf(state: JobState): RetryOptions | null {
  const retry = state.retry;
  return retry && typeof retry.generation === 'number' ? retry : null;
}

/** In a retry, the previous record of a step that needs no second run: succeeded, or skipped for its own reason. */
function settledBefore(state: JobState, step: AnyStepName): StepRecord | null {
  const previous = retryOf(state)?.previous;
  const record = previous?.steps[step];
  if (!record) return null;
  // validate's findings are what every later step routes on: without them (a run stopped before they were stored)
  // it runs again.
  if (step === 'validate' && (!previous.fileType || !previous.fileInfo)) return null;
  if (record.status === 'succeeded') return record;
  if (
    record.status === 'skipped' &&
    !record.reason?.endsWith(' failed') &&
    record.reason !== 'disabled by DISABLED_STEPS'
  )
    return record;
  return null;
}

function stepNode(step: AnyStepName, deps: GraphDeps) {
  const workflow = deps.workflow ?? BUILT_IN_WORKFLOW;
  const downstreamOf = (s: AnyStepName, state: JobState): AnyStepName[] => workflow.downstreamOf(s, state.fileType);
  return async (state: JobState, config: LangGraphRunnableConfig): Promise<JobUpdate> => {
    // Studio and SDK callers may leave jobId out: the thread is the job.
    const jobId = state.jobId || String(config.configurable?.thread_id ?? ulid());
    const adopt: JobUpdate = state.jobId ? {} : { jobId };
    const emit = async (record: StepRecord): Promise<void> => {
      await deps.events?.stepChanged(jobId, step, record);
    };
    const kept = settledBefore(state, step);
    if (kept) {
      await emit(kept);
      // validate carries the previous run's findings into the state, so later steps see them as before.
      const previous = retryOf(state)!.previous;
      return step === 'validate'
        ? {
            ...adopt,
            steps: { [step]: kept },
            results: previous.results,
            fileInfo: previous.fileInfo,
            fileType: previous.fileType,
          }
        : { ...adopt, steps: { [step]: kept } };
    }
    // The job's own choices, its profile applied when the run began (JobRunner). Where no runner began it (Studio),
    // the claim decides them. Outside the step's own failure handling: a refused claim ends the run with nothing stored.
    let instructions = state.instructions ?? null;
    if (step === 'validate' && deps.claim && typeof state.file?.path === 'string') {
      const claimed = await deps.claim({
        jobId,
        file: state.file,
        instructions: state.instructions,
        profile: state.profile,
      });
      instructions = claimed.instructions ?? null;
      adopt.instructions = claimed.instructions;
    }
    if (deps.disabledSteps?.includes(step)) {
      const record: StepRecord = { status: 'skipped', attempts: 0, reason: 'disabled by DISABLED_STEPS' };
      await emit(record);
      return { ...adopt, steps: { [step]: record } };
    }
    // Plugin step names and options in the job's instructions are checked against the plugins this service runs.
    const refused = step === 'validate' ? workflow.instructionsProblem(instructions) : null;
    if (refused) {
      const error: JobError = { code: 'INVALID_INPUT', message: refused, step };
      const record: StepRecord = { status: 'failed', attempts: 0, error };
      await emit(record);
      return { ...adopt, steps: { [step]: record }, error };
    }
    const leftOut = skippedByInstructions(step, instructions);
    if (leftOut) {
      const record: StepRecord = { status: 'skipped', attempts: 0, reason: leftOut };
      await emit(record);
      return { ...adopt, steps: { [step]: record, ...skipped(downstreamOf(step, state), `${step} was left out`) } };
    }
    const started = new Date();
    await emit({ status: 'running', attempts: 0, startedAt: started.toISOString() });
    const timing = (): Pick<StepRecord, 'startedAt' | 'finishedAt' | 'durationMs'> => {
      const finished = new Date();
      return {
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        durationMs: finished.getTime() - started.getTime(),
      };
    };
    let result: StepResult;
    try {
      result = await deps.dispatcher.run(step, toStepInput(state, jobId, instructions), { signal: config.signal });
    } catch (err) {
      // The run's own trouble (the queue or the database out of reach), not the step's: the run stops here and is
      // resumed later, when this step finds the task it dispatched.
      if (isTransient(err)) throw err;
      result = { outcome: failureOf(err), attempts: 1 };
    }
    const { outcome, attempts } = result;
    if (outcome.status === 'skipped') {
      const record: StepRecord = { status: 'skipped', attempts, reason: outcome.reason, ...timing() };
      await emit(record);
      const steps: StepRecords = { [step]: record };
      if (outcome.endsChain) Object.assign(steps, skipped(downstreamOf(step, state), outcome.reason));
      return { ...adopt, steps };
    }
    if (outcome.status === 'failed') {
      const error: JobError = { code: outcome.code, message: outcome.message, step };
      const record: StepRecord = { status: 'failed', attempts, error, ...timing() };
      await emit(record);
      const update: JobUpdate = {
        ...adopt,
        steps: { [step]: record, ...skipped(downstreamOf(step, state), `${step} failed`) },
      };
      if (workflow.policy(step).required || outcome.code === 'CANCELLED') update.error = error;
      // Refused but identified (an encrypted PDF): the failed job still says what the file is.
      if (step === 'validate' && outcome.learnt) {
        update.fileType = outcome.learnt.fileType;
        update.fileInfo = outcome.learnt.fileInfo;
      }
      return update;
    }
    const record: StepRecord = { status: 'succeeded', attempts, ...timing() };
    await emit(record);
    const update: JobUpdate = { ...adopt, steps: { [step]: record } };
    if (outcome.results) update.results = outcome.results;
    if (outcome.fileInfo) update.fileInfo = outcome.fileInfo;
    if (outcome.fileType) update.fileType = outcome.fileType;
    return update;
  };
}

function skipped(steps: AnyStepName[], reason: string): StepRecords {
  return Object.fromEntries(steps.map((s) => [s, { status: 'skipped', attempts: 0, reason } satisfies StepRecord]));
}

/**
 * The graph, built from the workflow's table: a node per step; validate, then extractMetadata, then each file type's
 * branch; every step routes on to the steps after it (its chain, the plugins anchored on it) or to finalize.
 */
export function buildGraph(deps: GraphDeps) {
  const workflow = deps.workflow ?? BUILT_IN_WORKFLOW;
  // LangGraph types node names from the builder chain; here they come from the table, checked when it compiles.
  const graph = new StateGraph({ stateSchema: JobStateAnnotation, input: JobInputAnnotation }) as unknown as StateGraph<
    typeof JobStateAnnotation.spec,
    JobState,
    JobUpdate,
    string
  >;
  for (const step of workflow.steps) graph.addNode(step, stepNode(step, deps));
  graph.addNode(
    'finalize',
    async (state: JobState): Promise<JobUpdate> => {
      // A person decides first when the job needs it: the run stops here (a checkpoint, no worker held) and is
      // resumed with the decision (JobRunner; Studio's resume). A failed job is not reviewed.
      let rejected = false;
      if (!state.error) {
        const request = reviewNeeded(state.results, state.instructions ?? null);
        if (request) rejected = parseDecision(interrupt(request)).decision === 'reject';
      }
      const job = {
        jobId: state.jobId,
        file: state.file,
        user: state.user ?? null,
        fileInfo: state.fileInfo,
        fileType: state.fileType,
        steps: state.steps,
        results: state.results,
        error: state.error,
      };
      const update = await finalize(job, deps.sink, rejected);
      await deps.finished?.({ ...job, ...update });
      return update;
    },
    // Fan-in: runs once, after every branch (of whatever length) has finished.
    { defer: true },
  );
  graph.addEdge(START, 'validate');
  const withFinalize = (routes: AnyStepName[]): string[] => [...new Set<string>([...routes, 'finalize'])];
  graph.addConditionalEdges(
    'validate',
    (state: JobState): Route[] => routeAfterValidate(state, workflow),
    withFinalize(['extractMetadata', ...workflow.next('validate', null)]),
  );
  const branches = Object.values(BRANCHES).flat();
  graph.addConditionalEdges(
    'extractMetadata',
    (state: JobState): Route[] => routeByType(state, workflow),
    withFinalize([...branches, ...workflow.next('extractMetadata', null)]),
  );
  for (const step of workflow.steps) {
    if (step === 'validate' || step === 'extractMetadata') continue;
    const after = workflow.next(step, null);
    if (after.length === 0) graph.addEdge(step, 'finalize');
    else
      graph.addConditionalEdges(
        step,
        (state: JobState): Route[] => routeNext(step, state, workflow),
        withFinalize(after),
      );
  }
  graph.addEdge('finalize', END);
  return graph;
}

export function compileGraph(deps: GraphDeps, checkpointer?: BaseCheckpointSaver) {
  return buildGraph(deps).compile({ checkpointer, name: 'media-job' });
}

export type JobGraph = ReturnType<typeof compileGraph>;
