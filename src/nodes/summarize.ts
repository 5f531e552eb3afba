/** summarize, offline: an extractive summary of the transcript or the PDF text, read from its artifact. */
import fs from 'node:fs/promises';
import type { StepFn } from './deps.js';
import { TEXT_ARTIFACT } from './extract-text.js';
import { TRANSCRIPT_ARTIFACT } from './transcribe.js';

const MIN_CHARS = 40;

export const summarize: StepFn = async (input, deps) => {
  const source = input.results.transcript ? TRANSCRIPT_ARTIFACT : input.results.text ? TEXT_ARTIFACT : null;
  if (!source) return { status: 'skipped', reason: 'there is no transcript or text to summarize' };
  const text = await fs.readFile(deps.artifacts.path(input.jobId, source), 'utf8');
  if (text.replace(/\s+/g, '').length < MIN_CHARS) {
    return {
      status: 'skipped',
      reason: `the ${source === TEXT_ARTIFACT ? 'document' : 'transcript'} has too little text to summarize`,
    };
  }
  const summary = deps.summarizer.summarize(text);
  if (!summary) return { status: 'skipped', reason: 'no sentences found to summarize' };
  return {
    status: 'succeeded',
    results: {
      summary: {
        provider: 'local-extractive',
        text: summary,
        source: source === TEXT_ARTIFACT ? 'text' : 'transcript',
      },
    },
  };
};
