/**
 * The step policy of DESIGN.md: which queue runs a step, whether its failure fails the job, how long it may take and
 * how many attempts it gets. The one place these numbers live.
 */
import type { QueueName } from '../config.js';
import type { StepName } from '../lib/types.js';

export type { QueueName };

export interface StepPolicy {
  queue: QueueName;
  /** A required step's final failure fails the job; an optional one is recorded and the job goes on. */
  required: boolean;
  timeoutMs: number;
  attempts: number;
  /**
   * Whether a TIMEOUT is worth another attempt. Media work on the same bytes takes as long again (a decompression
   * bomb would hold a worker for every attempt); a model behind HTTP may answer faster the next time.
   */
  retryTimeout: boolean;
}

export const STEP_POLICY: Record<StepName, StepPolicy> = {
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
};

/** The policy's time limit, or the STEP_TIMEOUTS override. */
export function stepTimeout(step: StepName, overrides: Partial<Record<StepName, number>> = {}): number {
  return overrides[step] ?? STEP_POLICY[step].timeoutMs;
}

/** Delay before retry `attempt + 1`: exponential from one second. */
export function backoffMs(attempt: number, baseMs = 1000): number {
  return baseMs * 2 ** (attempt - 1);
}
