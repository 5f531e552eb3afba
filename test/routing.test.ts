import { describe, expect, test } from 'vitest';
import { downstreamOf, routeAfterValidate, routeByType, routeNext } from '../src/graph/routing.js';
import type { JobError } from '../src/lib/types.js';

const error: JobError = { code: 'CORRUPT_FILE', message: 'broken', step: 'validate' };

describe('routing', () => {
  test('after validate: on to metadata, or straight to finalize on failure', () => {
    expect(routeAfterValidate({ error: null, fileType: null, steps: {} })).toBe('extractMetadata');
    expect(routeAfterValidate({ error, fileType: null, steps: {} })).toBe('finalize');
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
    expect(routeNext('extractAudio', { error: null, fileType: 'video', steps: {} })).toBe('transcribe');
    expect(routeNext('transcribe', { error: null, fileType: 'video', steps: {} })).toBe('summarize');
    expect(routeNext('extractText', { error: null, fileType: 'pdf', steps: {} })).toBe('summarize');
    const skipped = { transcribe: { status: 'skipped' as const, attempts: 0, reason: 'no audio' } };
    expect(routeNext('extractAudio', { error: null, fileType: 'video', steps: skipped })).toBe('finalize');
    expect(routeNext('extractText', { error, fileType: 'pdf', steps: {} })).toBe('finalize');
    expect(routeNext('summarize', { error: null, fileType: 'pdf', steps: {} })).toBe('finalize');
  });

  test('downstream of a chain step', () => {
    expect(downstreamOf('extractAudio')).toEqual(['transcribe', 'summarize']);
    expect(downstreamOf('extractText')).toEqual(['summarize']);
    expect(downstreamOf('generateThumbnails')).toEqual([]);
  });
});
