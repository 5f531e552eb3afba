/**
 * Where the job goes next: pure functions of the state, exported for unit tests. The graph wires them as conditional
 * edges; nothing else decides the path.
 */
import type { AnyStepName, FileType, StepName } from '../lib/types.js';
import type { JobState } from './state.js';

export type Route = AnyStepName | 'finalize';

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

/** What routing needs of the workflow: the steps after a step (its chain's next, then plugins; workflow.ts). */
export interface Successors {
  next(step: AnyStepName, fileType: FileType | null): AnyStepName[];
}

/** The built-in steps alone. */
const CHAINS_ONLY: Successors = {
  next: (step) => {
    const next = CHAINS[step as StepName];
    return next ? [next] : [];
  },
};

/** The routes still open: those not settled yet (a step already skipped is not run). */
function open(routes: AnyStepName[], state: RoutingState): Route[] {
  const left = routes.filter((s) => !state.steps[s]);
  return left.length > 0 ? left : ['finalize'];
}

export function routeAfterValidate(state: RoutingState, workflow: Successors = CHAINS_ONLY): Route[] {
  if (state.error) return ['finalize'];
  return ['extractMetadata', ...workflow.next('validate', state.fileType).filter((s) => !state.steps[s])];
}

export function routeByType(state: RoutingState, workflow: Successors = CHAINS_ONLY): Route[] {
  if (state.error || !state.fileType) return ['finalize'];
  return [...BRANCHES[state.fileType], ...workflow.next('extractMetadata', state.fileType)];
}

/** After a step: the steps after it, unless the job failed or they were already settled (skipped). */
export function routeNext(step: AnyStepName, state: RoutingState, workflow: Successors = CHAINS_ONLY): Route[] {
  if (state.error) return ['finalize'];
  return open(workflow.next(step, state.fileType), state);
}
