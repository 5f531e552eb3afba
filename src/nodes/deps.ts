/**
 * Everything a step needs from the outside world comes in through Deps, built once by createDeps at start-up.
 * Nodes import nothing that opens a connection or reads the environment.
 */
import type { Config } from '../config.js';
import { createAiModels, type AiCapability, type AiModels, type AiResultBase } from '../ai/index.js';
import { ArtifactStore } from '../lib/artifacts.js';
import type { FailedOutcome } from '../lib/errors.js';
import type { Instructions } from '../lib/instructions.js';
import type { Logger } from '../lib/log.js';
import type { NewFace } from '../lib/people.js';
import { OcrReaders } from '../lib/ocr.js';
import { resolveToolPaths, type ToolPaths } from '../lib/tools.js';
import type {
  FileInfo,
  FileType,
  FinishedJob,
  JobInput,
  Results,
  AnyStepName,
  StepName,
  StepStatus,
  Usage,
} from '../lib/types.js';

/** Where steps leave their trace; implemented by the job store. */
export interface JobSink {
  saveFinished(job: FinishedJob): Promise<void>;
  /** One row per execution of a step function: how the tests (and operators) see that nothing ran twice. */
  stepStarted(jobId: string, step: AnyStepName, attempt: number): Promise<number>;
  stepEnded(runId: number, status: StepStatus, errorCode?: string): Promise<void>;
  /** How far a running step is (0-100), for SSE and the dashboard; ignored once the step has settled. */
  stepProgress?(jobId: string, step: AnyStepName, percent: number): Promise<void>;
  /** What one model call cost: read by /metrics (tokens by provider and model, request time). */
  aiUsed(use: AiUse): Promise<void>;
  /** Where a picture's faces are recorded and placed in people (the job store's people store); absent: nowhere. */
  people?: FaceSink;
}

export interface FaceSink {
  /**
   * Records a job's faces and places them in its owner's people, once: false (nothing written) when the job already
   * has faces or no longer exists.
   */
  recordFaces(jobId: string, faces: NewFace[]): Promise<boolean>;
}

export interface AiUse {
  jobId: string;
  step: StepName;
  capability: 'vision' | 'speech' | 'text';
  provider: string;
  model: string;
  usage: Usage;
}

export interface Deps {
  config: Config;
  tools: ToolPaths;
  artifacts: ArtifactStore;
  jobs: JobSink;
  /** The models behind the AI steps: a provider through LangChain, the offline ones, or none (with a reason). */
  ai: AiModels;
  /** OCR readers (tesseract.js on local language data), started on first use and kept while used. */
  ocr: OcrReaders;
  log: Logger;
  /** The plugin steps (PLUGINS) by name; executeStep runs them as it runs the built-in ones. */
  pluginSteps?: ReadonlyMap<string, StepFn>;
}

/** The slice of the job state a step reads. Small JSON, so it can cross a queue. */
export interface StepInput {
  jobId: string;
  file: JobInput['file'];
  user: JobInput['user'];
  /** The job's BullMQ priority (1 is the highest; absent: none), carried to its step tasks. */
  priority?: number;
  /** 0 for the first run of a job, then one more for each retry: part of the step's task id. */
  generation?: number;
  fileInfo: FileInfo | null;
  fileType: FileType | null;
  results: Results;
  /** The job's instructions with its profile applied (lib/instructions.ts); absent when it asked nothing. */
  instructions?: Instructions;
}

export interface StepContext {
  signal: AbortSignal;
  attempt: number;
  log: Logger;
  /** When the step's time limit runs out (ms since the epoch): long work that saves its progress stops before it. */
  deadline?: number;
  /**
   * Reports how far the step is, as a fraction from 0 to 1; cheap to call often (what reaches the job document is
   * thinned to whole percents, at most about once a second). Optional: callers outside executeStep may leave it out.
   */
  progress?: (fraction: number) => void;
}

/**
 * What one step did, the same from its execution to the graph's step node: a step thread's reply, a task's BullMQ
 * return value and a dispatcher's answer all carry it. A step function fails by throwing (executeStep turns the error
 * into the `failed` variant) or by returning that variant itself.
 */
export type StepOutcome =
  | { status: 'succeeded'; results?: Results; fileInfo?: FileInfo; fileType?: FileType }
  | {
      status: 'skipped';
      reason: string;
      /** The steps after this one in its chain have nothing to work on either and are skipped with this reason. */
      endsChain?: boolean;
    }
  | FailedOutcome;

export type StepFn = (input: StepInput, deps: Deps, ctx: StepContext) => Promise<StepOutcome>;

export function createDeps(
  config: Config,
  jobs: JobSink,
  log: Logger,
  pluginSteps: ReadonlyMap<string, StepFn> = new Map(),
): Deps {
  const tools = resolveToolPaths({ ffmpegPath: config.ffmpegPath, ffprobePath: config.ffprobePath });
  return {
    pluginSteps,
    config,
    tools,
    artifacts: new ArtifactStore(config.artifactsDir),
    jobs,
    ai: createAiModels(config, tools, log),
    ocr: new OcrReaders(),
    log,
  };
}

/** Records what a model call cost, for /metrics. */
export function recordAiUse(
  deps: Deps,
  input: StepInput,
  step: StepName,
  capability: AiCapability,
  result: AiResultBase,
): Promise<void> {
  const { provider, model, usage } = result;
  return deps.jobs.aiUsed({ jobId: input.jobId, step, capability, provider, model, usage });
}
