/**
 * The step functions by name, and executeStep: one execution of one step with its timeout, cancellation and run
 * record. Dispatchers (inline, queued) call executeStep; nothing else calls a step function.
 */
import { describeError, failureOf, MediaError } from '../lib/errors.js';
import { warmPdf } from '../lib/pdf.js';
import type { AnyStepName, StepName } from '../lib/types.js';
import { analyzeImage } from './analyze-image.js';
import type { Deps, StepFn, StepInput, StepOutcome } from './deps.js';
import { extractAudio } from './extract-audio.js';
import { extractMetadata } from './extract-metadata.js';
import { extractText } from './extract-text.js';
import { generateThumbnails } from './generate-thumbnails.js';
import { posterFrame } from './poster-frame.js';
import { renderPreview } from './render-preview.js';
import { storyboard } from './storyboard.js';
import { summarize } from './summarize.js';
import { transcodeVideo } from './transcode-video.js';
import { transcribe } from './transcribe.js';
import { validate } from './validate.js';
import { waveform } from './waveform.js';

export type { Deps, StepInput, StepOutcome, StepFn, JobSink, FaceSink, StepContext, AiUse } from './deps.js';
export { createDeps } from './deps.js';
export { pluginStepFn, pluginStepFns } from './plugin-step.js';
export { finalize, indexFullText } from './finalize.js';

export const STEPS: Record<StepName, StepFn> = {
  validate,
  extractMetadata,
  generateThumbnails,
  analyzeImage,
  posterFrame,
  extractAudio,
  transcribe,
  renderPreview,
  extractText,
  summarize,
  waveform,
  transcodeVideo,
  storyboard,
};

/**
 * What a step loads on its first call beyond the modules every step thread imports; undefined where it loads nothing
 * (a provider that is off, or remote).
 */
const WARM: Partial<Record<StepName, (deps: Deps) => Promise<unknown> | undefined>> = {
  analyzeImage: (deps) => deps.ai.vision?.warm?.(),
  extractText: () => warmPdf('text'),
  renderPreview: () => warmPdf('render'),
  summarize: (deps) => deps.ai.text?.warm?.(),
};

/**
 * Loads the libraries and models of `steps` in this thread, so that the first job after start-up does not wait for
 * them; returns the steps that had something to load and loaded it. A failure is only logged: the step itself
 * reports it, with its code, when it runs.
 */
export async function warmSteps(steps: readonly AnyStepName[], deps: Deps): Promise<AnyStepName[]> {
  const warmed = await Promise.all(
    steps.map(async (step): Promise<AnyStepName | null> => {
      const started = performance.now();
      try {
        const loading = WARM[step as StepName]?.(deps);
        if (!loading) return null;
        await loading;
      } catch (err) {
        deps.log.warn({ step, err: describeError(err).message }, 'could not load what the step needs ahead of it');
        return null;
      }
      deps.log.debug({ step, ms: Math.round(performance.now() - started) }, 'step warmed');
      return step;
    }),
  );
  return warmed.filter((s): s is AnyStepName => s !== null);
}

export interface ExecuteOptions {
  attempt: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * Leave the success of this execution for the caller to record (with `deps.jobs.stepEnded(runId, …)`) once the
   * result is safe: a queued task records it after BullMQ has marked the task completed, so a `succeeded` run is
   * always one that will never be executed again.
   */
  deferSuccessRecord?: boolean;
  /** Called once the run record is written, when the step's own clock starts. */
  onStarted?: () => void;
  /** Whether this step's TIMEOUT is worth another attempt (the step policy says; default yes). */
  timeoutRetryable?: boolean;
}

/**
 * Runs a step once and says what it did. On timeout the step's signal aborts, which kills any ffmpeg child it
 * started; the step then ends with TIMEOUT even if in-process work (a decoder) is still finishing in the background,
 * and what it wrote or still writes is discarded. A step's failure is returned as its `failed` outcome; only trouble
 * before the step began (its run record could not be written) throws.
 */
export async function executeStep(
  step: AnyStepName,
  input: StepInput,
  deps: Deps,
  opts: ExecuteOptions,
): Promise<{ outcome: StepOutcome; runId: number }> {
  const runId = await deps.jobs.stepStarted(input.jobId, step, opts.attempt);
  opts.onStarted?.();
  const controller = new AbortController();
  const onParentAbort = (): void => controller.abort(new MediaError('CANCELLED', 'the job was cancelled'));
  if (opts.signal?.aborted) onParentAbort();
  opts.signal?.addEventListener('abort', onParentAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new MediaError('TIMEOUT', `${step} took longer than ${opts.timeoutMs} ms and was stopped`, {
        retryable: opts.timeoutRetryable ?? true,
      });
      controller.abort(err);
      reject(err);
    }, opts.timeoutMs);
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true });
  });
  stopped.catch(() => undefined);
  const log = deps.log.child({ jobId: input.jobId, step, attempt: opts.attempt });
  // The step's artifacts appear when it succeeds; a failed or stopped step leaves none (lib/artifacts.ts).
  const artifacts = deps.artifacts.stage(input.jobId);
  const progress = progressReporter(input.jobId, step, deps, log);
  let outcome: StepOutcome;
  try {
    const run = STEPS[step as StepName] ?? deps.pluginSteps?.get(step);
    if (!run) throw new MediaError('INTERNAL', `no step ${step} in this process (is PLUGINS the same everywhere?)`);
    outcome = await Promise.race([
      run(
        input,
        { ...deps, artifacts },
        {
          signal: controller.signal,
          attempt: opts.attempt,
          log,
          deadline: Date.now() + opts.timeoutMs,
          progress: progress.report,
        },
      ),
      stopped,
    ]);
    if (outcome.status !== 'failed') {
      await artifacts.commit();
      if (!opts.deferSuccessRecord) await deps.jobs.stepEnded(runId, outcome.status);
      return { outcome, runId };
    }
  } catch (err) {
    outcome = failureOf(err);
    if (outcome.interrupted) log.warn({ message: outcome.message }, 'step interrupted');
    else if (outcome.code === 'INTERNAL') log.error({ err }, 'step failed with an unexpected error');
  } finally {
    progress.stop();
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onParentAbort);
  }
  await artifacts
    .discard()
    .catch((e: unknown) => log.warn({ err: describeError(e).message }, "could not delete a failed step's artifacts"));
  await deps.jobs.stepEnded(runId, 'failed', outcome.code);
  return { outcome, runId };
}

/** How often at most a step's progress is written to its job document. */
const PROGRESS_INTERVAL_MS = 1000;

/**
 * A step's progress reports, thinned for the job store: whole percents (0-99: 100 is the step's success), at most one
 * write a second and one at a time; none after the step has ended. A write that fails is only logged.
 */
function progressReporter(
  jobId: string,
  step: AnyStepName,
  deps: Deps,
  log: Deps['log'],
): { report: (fraction: number) => void; stop: () => void } {
  let sent = -1;
  let sentAt = 0;
  let writing = false;
  let stopped = false;
  return {
    report(fraction) {
      if (stopped || writing || !deps.jobs.stepProgress || !Number.isFinite(fraction)) return;
      const percent = Math.max(0, Math.min(99, Math.floor(fraction * 100)));
      const now = Date.now();
      if (percent === sent || now - sentAt < PROGRESS_INTERVAL_MS) return;
      sent = percent;
      sentAt = now;
      writing = true;
      deps.jobs
        .stepProgress(jobId, step, percent)
        .catch((err: unknown) => log.debug({ err: describeError(err).message }, 'progress not recorded'))
        .finally(() => (writing = false));
    },
    stop() {
      stopped = true;
    },
  };
}
