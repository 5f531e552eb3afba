/**
 * extractText: the PDF's text as an artifact (pages separated by form feeds); pages, length and an excerpt in state.
 * Read page by page up to MAX_TEXT_CHARS: a document that holds more text than that (or claims to) is cut there and
 * says so, instead of growing without bound. A page that would exhaust memory by itself is stopped by the step
 * thread's memory ceiling (RESOURCE_LIMIT). At most MAX_PDF_PAGES pages (validate refuses more, TOO_LARGE), each a
 * page object of its own: a page tree that lists one object again and again claims millions of pages in a few bytes
 * (CORRUPT_FILE). The step's time limit (TIMEOUT) bounds the rest.
 */
import { MediaError } from '../lib/errors.js';
import { excerpt } from '../lib/files.js';
import { documentTitle, pageCount, pageText, withPdf } from '../lib/pdf.js';
import type { StepFn } from './deps.js';

export const TEXT_ARTIFACT = 'text.txt';

export const extractText: StepFn = async (input, deps, ctx) => {
  const limit = deps.config.maxTextChars;
  const maxPages = deps.config.maxPdfPages;
  const { pages, total, cut, title } = await withPdf(input.file.path, async (pdf) => {
    const count = await pageCount(pdf);
    if (count > maxPages) {
      throw new MediaError('TOO_LARGE', `the PDF has ${count} pages; the limit (MAX_PDF_PAGES) is ${maxPages}`);
    }
    const out: string[] = [];
    const seen = new Map<number, number>();
    let chars = 0;
    for (let n = 1; n <= count; n++) {
      ctx.signal.throwIfAborted();
      const page = await pageText(pdf, n);
      const earlier = page.object === null ? undefined : seen.get(page.object);
      if (earlier !== undefined) {
        throw new MediaError(
          'CORRUPT_FILE',
          `the PDF's page tree lists one page object as page ${earlier} and page ${n}`,
        );
      }
      if (page.object !== null) seen.set(page.object, n);
      const text = page.text.trim();
      if (chars + text.length > limit) {
        out.push(text.slice(0, limit - chars));
        return { pages: out, total: count, cut: true, title: await documentTitle(pdf) };
      }
      out.push(text);
      chars += text.length;
    }
    return { pages: out, total: count, cut: false, title: await documentTitle(pdf) };
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
        ...(title && { title }),
        ...(cut && { truncated: true, pagesRead: pages.length }),
      },
    },
  };
};
