/**
 * A dispatcher runs one step for the graph and reports how many attempts it took. The graph does not know where the
 * work happens: inline (this process) or queued (a BullMQ worker, possibly on another machine).
 */
import { failureOf } from '../lib/errors.js';
import type { AnyStepName } from '../lib/types.js';
import { executeStep, type Deps, type ExecuteOptions, type StepInput, type StepOutcome } from '../nodes/index.js';
import { backoffMs, stepTimeout } from './policy.js';
import { BUILT_IN_WORKFLOW, type Workflow } from './workflow.js';

/** One execution of a step: its outcome, and the step_runs row it wrote (absent when it could not write one). */
export interface StepRun {
  outcome: StepOutcome;
  runId?: number;
}

/**
 * A step's result, the same from its execution to the graph: a task's BullMQ return value and a dispatcher's answer
 * are this one shape. A step that failed for good (bad input, or its last attempt) has the `failed` outcome.
 */
export interface StepResult extends StepRun {
  attempts: number;
}

export interface Dispatcher {
  /** Resolves with the step's result, failures included; throws only on trouble of the run's own (Redis gone). */
  run(step: AnyStepName, input: StepInput, opts: { signal?: AbortSignal }): Promise<StepResult>;
}

/** One execution of a step: in this thread by default, or in a step thread (src/queue/step-pool.ts). */
export type Execute = (step: AnyStepName, input: StepInput, deps: Deps, opts: ExecuteOptions) => Promise<StepRun>;

/**
 * Runs steps in this process, one execution at a time through `execute`. Retries transient failures per the step's
 * policy; bad input fails at once.
 */
export function inlineDispatcher(
  getDeps: () => Deps | Promise<Deps>,
  execute: Execute = executeStep,
  workflow: Workflow = BUILT_IN_WORKFLOW,
): Dispatcher {
  return {
    async run(step, input, { signal }) {
      const deps = await getDeps();
      const policy = workflow.policy(step);
      for (let attempt = 1; ; attempt++) {
        const timeoutMs = stepTimeout(step, deps.config.stepTimeouts, input.results.metadata?.durationSec, policy);
        const run = await execute(step, input, deps, {
          attempt,
          timeoutMs,
          timeoutRetryable: policy.retryTimeout,
          signal,
        }).catch((err: unknown): StepRun => {
          // The step did not begin (its run record could not be written, no step thread took it).
          deps.log.warn({ err, step, jobId: input.jobId }, 'step could not begin');
          return { outcome: failureOf(err) };
        });
        const { outcome } = run;
        if (outcome.status !== 'failed' || !outcome.retryable || attempt >= policy.attempts || signal?.aborted)
          return { ...run, attempts: attempt };
        const { code, message } = outcome;
        deps.log.warn({ step, jobId: input.jobId, attempt, code, message }, 'step failed; retrying');
        await new Promise((r) => setTimeout(r, backoffMs(attempt, deps.config.retryBackoffMs)));
      }
    },
  };
}
