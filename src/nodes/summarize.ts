/**
 * summarize: the text model in `deps.ai` (a provider's chat model, map-reduce over long texts; or the offline
 * extractive summarizer) reads the transcript or the PDF text from its artifact. Timed transcripts also get chapters
 * when the model can write them.
 */
import type { TranscriptSegment } from '../ai/index.js';
import { recordAiUse, type StepFn } from './deps.js';
import { TEXT_ARTIFACT } from './extract-text.js';
import { SEGMENTS_ARTIFACT, TRANSCRIPT_ARTIFACT } from './transcribe.js';

const MIN_CHARS = 40;

export const summarize: StepFn = async (input, deps, ctx) => {
  const source = input.results.transcript ? 'transcript' : input.results.text ? 'text' : null;
  if (!source) return { status: 'skipped', reason: 'there is no transcript or text to summarize' };
  const model = deps.ai.text;
  if (!model) return { status: 'skipped', reason: deps.ai.unavailable.text ?? 'no text model is configured' };
  const artifact = source === 'text' ? TEXT_ARTIFACT : TRANSCRIPT_ARTIFACT;
  const text = await deps.artifacts.readText(input.jobId, artifact);
  if (text === null) throw new Error(`${source} result without its ${artifact} artifact`);
  if (text.replace(/\s+/g, '').length < MIN_CHARS) {
    return {
      status: 'skipped',
      reason: `the ${source === 'text' ? 'document' : 'transcript'} has too little text to summarize`,
    };
  }
  // The timed segments transcribe saved (none for a transcript from before they were kept).
  const segmentsJson = source === 'transcript' ? await deps.artifacts.readText(input.jobId, SEGMENTS_ARTIFACT) : null;
  const segments = segmentsJson ? (JSON.parse(segmentsJson) as TranscriptSegment[]) : [];
  const wish = input.instructions?.summary;
  const result = await model.summarize(
    {
      text,
      source,
      ...(source === 'text' && input.results.text?.title && { title: input.results.text.title }),
      ...(segments.length > 0 && { segments }),
      ...(wish?.length && { length: wish.length }),
      ...(wish?.language && { language: wish.language }),
    },
    { signal: ctx.signal },
  );
  await recordAiUse(deps, input, 'summarize', 'text', result);
  if (!result.summary.trim())
    return {
      status: 'skipped',
      reason: 'no sentences to summarize: the text is a single sentence, or none of it reads as prose',
    };
  return {
    status: 'succeeded',
    results: {
      summary: {
        provider: result.provider,
        model: result.model,
        text: result.summary,
        source,
        title: result.title,
        keyPoints: result.keyPoints,
        language: result.language,
        chapters: result.chapters,
        chunks: result.chunks,
        usage: result.usage,
      },
    },
  };
};
