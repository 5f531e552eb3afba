/**
 * The plugin interface: what a module named in PLUGINS exports (its default export: one step definition or an array of
 * them). This file is the package's `plugin` entry (`import { defineStep } from 'media-orchestrator/plugin'`); it
 * imports nothing at run time, so a plugin's own tests load nothing of the service. docs/plugins.md describes it.
 */
import type { ZodType } from 'zod';

export type PluginFileType = 'image' | 'video' | 'audio' | 'pdf';

/** The file and the results a plugin step works on: small JSON, the same whichever machine runs the step. */
export interface PluginInput<Options = unknown> {
  jobId: string;
  fileType: PluginFileType;
  /** The uploaded or referenced file: read it, never write it. `mime` and `size` are validate's findings. */
  file: { path: string; name: string; mime: string; size: number };
  /** The results of the steps before this one (`metadata`, `text`, other plugins' under their names, …). */
  results: Record<string, unknown>;
  /** `instructions.steps.<name>` of the job (after its profile), parsed by the step's `options` schema when it has one. */
  options: Options;
  /** 1 for the first attempt, then one more for each retry. */
  attempt: number;
}

/** The job's artifacts (files under the job, served at `/jobs/<id>/artifacts/<name>`), as a plugin step sees them. */
export interface PluginArtifacts {
  /**
   * A new artifact written by `write(file)` to the path it is given. It appears only if the step succeeds: a failed,
   * stopped or killed attempt leaves nothing behind. Names: letters, digits, `.`, `_`, `-`, at most 128.
   */
  produce(name: string, write: (file: string) => Promise<void>): Promise<{ name: string; url: string; bytes: number }>;
  /** An artifact of the job as text (`text.txt` of extractText, `transcript.txt`, …); null when it has none. */
  readText(name: string): Promise<string | null>;
}

export interface PluginContext {
  /** Aborted when the step's time limit runs out or the job is cancelled: stop the work and return or throw. */
  signal: AbortSignal;
  log: {
    info(obj: object, msg?: string): void;
    warn(obj: object, msg?: string): void;
    debug(obj: object, msg?: string): void;
  };
  /** How far the step is, 0 to 1 (shown as the step's progress in the job document, SSE and the dashboard). */
  progress(fraction: number): void;
  artifacts: PluginArtifacts;
}

/**
 * An Error a plugin step throws to fail with a code of its own (upper-case words: `VIRUS_FOUND`). `retryable: true`
 * asks for another attempt (up to `attempts`); otherwise the step fails at once. Any object thrown with these two
 * properties works the same; this class only saves writing them.
 */
export class PluginError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'PluginError';
  }
}

export interface StepDefinition<Options = unknown> {
  /** Unique, not a built-in step's: a letter, then letters, digits and `_` (at most 48). Its result is `results.<name>`. */
  name: string;
  /** The kinds of file it runs for; each must be one its anchor runs for. */
  fileTypes: readonly PluginFileType[];
  /** The step whose result it needs (a built-in step or another plugin's): it runs after it, skipped if it fails. */
  after: string;
  /** The task queue it is dispatched to: a built-in one (`light`, `image`, …) or a new one (`scan`). */
  queue: string;
  /** true: its failure is recorded and the job ends `completed_with_errors`; false: its failure fails the job. */
  optional?: boolean;
  /** The time limit of one attempt (default 60 000 ms). */
  timeoutMs?: number;
  /** Attempts in all, retries included (default 3). */
  attempts?: number;
  /** A zod schema of `instructions.steps.<name>`; absent options are parsed as `{}`. */
  options?: ZodType<Options>;
  /** The work: returns the JSON value stored at `results.<name>` (at most 64 KiB of JSON). */
  run(input: PluginInput<Options>, ctx: PluginContext): Promise<unknown>;
}

/** Types a step definition (a plain object works the same). */
export function defineStep<Options = unknown>(step: StepDefinition<Options>): StepDefinition<Options> {
  return step;
}
