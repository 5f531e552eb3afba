/**
 * A dispatcher runs one step for the graph and reports how many attempts it took. The graph does not know where the
 * work happens: inline (this process) or queued (a BullMQ worker, possibly on another machine).
 */
import { stepErrorOf, type Learnt } from '../lib/errors.js';
import type { AnyStepName, StepErrorCode } from '../lib/types.js';
import { executeStep, type Deps, type ExecuteOptions, type StepInput, type StepOutcome } from '../nodes/index.js';
import { backoffMs, stepTimeout } from './policy.js';
import { BUILT_IN_WORKFLOW, type Workflow } from './workflow.js';

/**
 * A step's result, the same from its execution to the graph: a step thread's reply, a task's BullMQ return value and
 * a dispatcher's answer are this one shape.
 */
export interface StepResult {
  outcome: StepOutcome;
  attempts: number;
  /** The step_runs row of the execution that produced it. */
  runId: number;
}

/** A step's final failure, after every attempt the policy allows. */
export class StepFailure extends Error {
  constructor(
    readonly code: StepErrorCode,
    message: string,
    readonly attempts: number,
    /** What the step learnt about the file before it failed (validate: its type and identity). */
    readonly learnt?: Learnt,
  ) {
    super(message);
    this.name = 'StepFailure';
  }
}

export interface Dispatcher {
  run(step: AnyStepName, input: StepInput, opts: { signal?: AbortSignal }): Promise<StepResult>;
}

/** One execution of a step: in this thread by default, or in a step thread (src/queue/step-pool.ts). */
export type Execute = (
  step: AnyStepName,
  input: StepInput,
  deps: Deps,
  opts: ExecuteOptions,
) => Promise<{ outcome: StepOutcome; runId: number }>;

/**
 * Runs steps in this process, one execution at a time through `execute`. Retries transient errors per the step's policy;
 * bad input fails at once.
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
        try {
          const timeoutMs = stepTimeout(step, deps.config.stepTimeouts, input.results.metadata?.durationSec, policy);
          const { outcome, runId } = await execute(step, input, deps, {
            attempt,
            timeoutMs,
            timeoutRetryable: policy.retryTimeout,
            signal,
          });
          return { outcome, attempts: attempt, runId };
        } catch (err) {
          const { code, message, retryable, learnt } = stepErrorOf(err);
          if (!retryable || attempt >= policy.attempts || signal?.aborted) {
            if (code === 'INTERNAL')
              deps.log.error({ err, step, jobId: input.jobId }, 'step failed with an unexpected error');
            throw new StepFailure(code, message, attempt, learnt);
          }
          deps.log.warn({ step, jobId: input.jobId, attempt, code, message }, 'step failed; retrying');
          await new Promise((r) => setTimeout(r, backoffMs(attempt, deps.config.retryBackoffMs)));
        }
      }
    },
  };
}
