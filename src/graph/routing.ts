/**
 * Where the job goes next: pure functions of the state, exported for unit tests. The graph wires them as conditional
 * edges; nothing else decides the path.
 */
import type { FileType, StepName } from '../lib/types.js';
import type { JobState } from './state.js';

export type Route = StepName | 'finalize';

/** The steps each kind of file starts in parallel after extractMetadata. */
export const BRANCHES: Record<FileType, StepName[]> = {
  image: ['generateThumbnails', 'analyzeImage'],
  video: ['posterFrame', 'extractAudio', 'waveform', 'transcodeVideo', 'storyboard'],
  audio: ['transcribe', 'waveform'],
  pdf: ['renderPreview', 'extractText'],
};

/** Sequential chains inside a branch: each step feeds the next. */
export const CHAINS: Partial<Record<StepName, StepName>> = {
  extractAudio: 'transcribe',
  transcribe: 'summarize',
  extractText: 'summarize',
};

type RoutingState = Pick<JobState, 'error' | 'fileType' | 'steps'>;

export function routeAfterValidate(state: RoutingState): Route {
  return state.error ? 'finalize' : 'extractMetadata';
}

export function routeByType(state: RoutingState): Route[] {
  if (state.error || !state.fileType) return ['finalize'];
  return BRANCHES[state.fileType];
}

/** After a chain step: its successor, unless the job failed or the successor was already settled (skipped). */
export function routeNext(step: StepName, state: RoutingState): Route {
  const next = CHAINS[step];
  if (!next || state.error || state.steps[next]) return 'finalize';
  return next;
}

/** Every step after `step` in its chain: skipped together when `step` leaves them nothing to work on. */
export function downstreamOf(step: StepName): StepName[] {
  const out: StepName[] = [];
  for (let next = CHAINS[step]; next; next = CHAINS[next]) out.push(next);
  return out;
}
