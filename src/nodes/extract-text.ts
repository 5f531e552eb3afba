/**
 * extractText: the PDF's text as an artifact (pages separated by form feeds); pages, length and an excerpt in state.
 * Read page by page up to MAX_TEXT_CHARS: a document that holds more text than that (or claims to) is cut there and
 * says so, instead of growing without bound. A page that would exhaust memory by itself is stopped by the step
 * thread's memory ceiling (RESOURCE_LIMIT).
 */
import { excerpt } from '../lib/files.js';
import { withPdf } from '../lib/pdf.js';
import type { StepFn } from './deps.js';

export const TEXT_ARTIFACT = 'text.txt';

export const extractText: StepFn = async (input, deps, ctx) => {
  const limit = deps.config.maxTextChars;
  const { pages, total, cut } = await withPdf(input.file.path, async (pdf) => {
    const count = input.results.metadata?.pages ?? (await pdf.getInfo()).total;
    const out: string[] = [];
    let chars = 0;
    for (let n = 1; n <= count; n++) {
      ctx.signal.throwIfAborted();
      const result = await pdf.getText({ partial: [n], pageJoiner: '' });
      const text = result.pages.map((p) => p.text.trim()).join('\n');
      if (chars + text.length > limit) {
        out.push(text.slice(0, limit - chars));
        return { pages: out, total: count, cut: true };
      }
      out.push(text);
      chars += text.length;
    }
    return { pages: out, total: count, cut: false };
  });
  const text = pages.join('\n\f\n');
  const chars = pages.reduce((n, p) => n + p.length, 0);
  const ref = await deps.artifacts.write(input.jobId, TEXT_ARTIFACT, text);
  return {
    status: 'succeeded',
    results: {
      text: {
        pages: total,
        chars,
        excerpt: excerpt(text, 500),
        url: ref.url,
        ...(cut && { truncated: true, pagesRead: pages.length }),
      },
    },
  };
};
