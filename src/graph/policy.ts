/**
 * The step policy of DESIGN.md: which queue runs a step, whether its failure fails the job, how long it may take and
 * how many attempts it gets. The one place these numbers live.
 */
import type { QueueName } from '../config.js';
import type { AnyStepName, StepName } from '../lib/types.js';

export type { QueueName };

export interface StepPolicy {
  /** A built-in queue (QueueName), or one a plugin step names. */
  queue: string;
  /** A required step's final failure fails the job; an optional one is recorded and the job goes on. */
  required: boolean;
  timeoutMs: number;
  attempts: number;
  /**
   * Whether a TIMEOUT is worth another attempt. Media work on the same bytes takes as long again (a decompression
   * bomb would hold a worker for every attempt); a model behind HTTP may answer faster the next time.
   */
  retryTimeout: boolean;
  /**
   * Added to `timeoutMs` for every second of the media's duration, for steps whose work grows with it (a transcode
   * of two hours takes far longer than one of a minute).
   */
  perMediaSecondMs?: number;
}

export const STEP_POLICY: Record<StepName, StepPolicy & { queue: QueueName }> = {
  validate: { queue: 'light', required: true, timeoutMs: 120_000, attempts: 3, retryTimeout: false },
  extractMetadata: { queue: 'light', required: true, timeoutMs: 120_000, attempts: 3, retryTimeout: false },
  generateThumbnails: { queue: 'image', required: true, timeoutMs: 180_000, attempts: 3, retryTimeout: false },
  analyzeImage: { queue: 'ai', required: false, timeoutMs: 180_000, attempts: 3, retryTimeout: true },
  posterFrame: { queue: 'video', required: false, timeoutMs: 180_000, attempts: 3, retryTimeout: false },
  renderPreview: { queue: 'document', required: false, timeoutMs: 180_000, attempts: 3, retryTimeout: false },
  extractAudio: { queue: 'video', required: false, timeoutMs: 3_600_000, attempts: 3, retryTimeout: false },
  transcribe: { queue: 'ai', required: false, timeoutMs: 1_800_000, attempts: 3, retryTimeout: true },
  extractText: { queue: 'document', required: true, timeoutMs: 300_000, attempts: 3, retryTimeout: false },
  summarize: { queue: 'ai', required: false, timeoutMs: 600_000, attempts: 3, retryTimeout: true },
  waveform: { queue: 'video', required: false, timeoutMs: 3_600_000, attempts: 3, retryTimeout: false },
  // 1080p to 720p at the default preset ran at 0.65-1.07x real time on two heavily loaded cores: four seconds a
  // second of video leaves room for a slower machine and for sources that decode slowly (docs/benchmarks.md).
  transcodeVideo: {
    queue: 'video',
    required: false,
    timeoutMs: 300_000,
    attempts: 3,
    retryTimeout: false,
    perMediaSecondMs: 4000,
  },
  storyboard: {
    queue: 'video',
    required: false,
    timeoutMs: 180_000,
    attempts: 3,
    retryTimeout: false,
    perMediaSecondMs: 500,
  },
};

/** The longest a duration-grown limit may be: a damaged header can claim a duration of months. */
const MAX_GROWN_TIMEOUT_MS = 24 * 3_600_000;

/**
 * The STEP_TIMEOUTS override, or the policy's time limit, grown by the media's duration (`durationSec`, from
 * extractMetadata) for the steps whose work grows with it.
 */
export function stepTimeout(
  step: AnyStepName,
  overrides: Partial<Record<StepName, number>> = {},
  durationSec?: number | null,
  policy: StepPolicy = STEP_POLICY[step as StepName],
): number {
  const override = overrides[step as StepName];
  if (override !== undefined) return override;
  const { timeoutMs, perMediaSecondMs } = policy;
  if (!perMediaSecondMs || !durationSec || !Number.isFinite(durationSec) || durationSec <= 0) return timeoutMs;
  return Math.min(MAX_GROWN_TIMEOUT_MS, Math.round(timeoutMs + durationSec * perMediaSecondMs));
}

/** Delay before retry `attempt + 1`: exponential from one second. */
export function backoffMs(attempt: number, baseMs = 1000): number {
  return baseMs * 2 ** (attempt - 1);
}
