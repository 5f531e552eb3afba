/** extractText: all the PDF's text as an artifact (pages separated by form feeds); pages, length and an excerpt in state. */
import { excerpt } from '../lib/files.js';
import { withPdf } from '../lib/pdf.js';
import type { StepFn } from './deps.js';

export const TEXT_ARTIFACT = 'text.txt';

export const extractText: StepFn = async (input, deps) => {
  const pages = await withPdf(input.file.path, async (pdf) => {
    const result = await pdf.getText({ pageJoiner: '' });
    return result.pages.map((p) => p.text.trim());
  });
  const text = pages.join('\n\f\n');
  const chars = pages.reduce((n, p) => n + p.length, 0);
  const ref = await deps.artifacts.write(input.jobId, TEXT_ARTIFACT, text);
  return {
    status: 'succeeded',
    results: { text: { pages: pages.length, chars, excerpt: excerpt(text, 500), url: ref.url } },
  };
};
