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
}

export const STEP_POLICY: Record<StepName, StepPolicy> = {
  validate: { queue: 'light', required: true, timeoutMs: 120_000, attempts: 3 },
  extractMetadata: { queue: 'light', required: true, timeoutMs: 120_000, attempts: 3 },
  generateThumbnails: { queue: 'image', required: true, timeoutMs: 180_000, attempts: 3 },
  analyzeImage: { queue: 'ai', required: false, timeoutMs: 180_000, attempts: 3 },
  posterFrame: { queue: 'video', required: false, timeoutMs: 180_000, attempts: 3 },
  renderPreview: { queue: 'document', required: false, timeoutMs: 180_000, attempts: 3 },
  extractAudio: { queue: 'video', required: false, timeoutMs: 3_600_000, attempts: 3 },
  transcribe: { queue: 'ai', required: false, timeoutMs: 1_800_000, attempts: 3 },
  extractText: { queue: 'document', required: true, timeoutMs: 600_000, attempts: 3 },
  summarize: { queue: 'ai', required: false, timeoutMs: 600_000, attempts: 3 },
};

/** The policy's time limit, or the STEP_TIMEOUTS override. */
export function stepTimeout(step: StepName, overrides: Partial<Record<StepName, number>> = {}): number {
  return overrides[step] ?? STEP_POLICY[step].timeoutMs;
}

/** Delay before retry `attempt + 1`: exponential from one second. */
export function backoffMs(attempt: number, baseMs = 1000): number {
  return baseMs * 2 ** (attempt - 1);
}
