import { describe, expect, test } from 'vitest';
import { routeAfterValidate, routeByType, routeNext } from '../src/graph/routing.js';
import { BUILT_IN_WORKFLOW } from '../src/graph/workflow.js';
import type { JobError } from '../src/lib/types.js';

const error: JobError = { code: 'CORRUPT_FILE', message: 'broken', step: 'validate' };

describe('routing', () => {
  test('after validate: on to metadata, or straight to finalize on failure', () => {
    expect(routeAfterValidate({ error: null, fileType: null, steps: {} })).toEqual(['extractMetadata']);
    expect(routeAfterValidate({ error, fileType: null, steps: {} })).toEqual(['finalize']);
  });

  test('by type: each kind fans out to its branch', () => {
    const route = (fileType: 'image' | 'video' | 'audio' | 'pdf') => routeByType({ error: null, fileType, steps: {} });
    expect(route('image')).toEqual(['generateThumbnails', 'analyzeImage']);
    expect(route('video')).toEqual(['posterFrame', 'extractAudio', 'waveform', 'transcodeVideo', 'storyboard']);
    expect(route('audio')).toEqual(['transcribe', 'waveform']);
    expect(route('pdf')).toEqual(['renderPreview', 'extractText']);
  });

  test('by type: a failed or untyped job goes to finalize', () => {
    expect(routeByType({ error, fileType: 'image', steps: {} })).toEqual(['finalize']);
    expect(routeByType({ error: null, fileType: null, steps: {} })).toEqual(['finalize']);
  });

  test('chains continue unless the next step is already settled or the job failed', () => {
    expect(routeNext('extractAudio', { error: null, fileType: 'video', steps: {} })).toEqual(['transcribe']);
    expect(routeNext('transcribe', { error: null, fileType: 'video', steps: {} })).toEqual(['summarize']);
    expect(routeNext('extractText', { error: null, fileType: 'pdf', steps: {} })).toEqual(['summarize']);
    const skipped = { transcribe: { status: 'skipped' as const, attempts: 0, reason: 'no audio' } };
    expect(routeNext('extractAudio', { error: null, fileType: 'video', steps: skipped })).toEqual(['finalize']);
    expect(routeNext('extractText', { error, fileType: 'pdf', steps: {} })).toEqual(['finalize']);
    expect(routeNext('summarize', { error: null, fileType: 'pdf', steps: {} })).toEqual(['finalize']);
  });

  test('downstream of a chain step', () => {
    expect(BUILT_IN_WORKFLOW.downstreamOf('extractAudio', null)).toEqual(['transcribe', 'summarize']);
    expect(BUILT_IN_WORKFLOW.downstreamOf('extractText', null)).toEqual(['summarize']);
    expect(BUILT_IN_WORKFLOW.downstreamOf('generateThumbnails', null)).toEqual([]);
  });
});
