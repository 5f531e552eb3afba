/**
 * extractText: the PDF's text as an artifact (pages separated by form feeds); pages, length and an excerpt in state.
 * Read page by page up to MAX_TEXT_CHARS: a document that holds more text than that (or claims to) is cut there and
 * says so, instead of growing without bound. A page that would exhaust memory by itself is stopped by the step
 * thread's memory ceiling (RESOURCE_LIMIT). At most MAX_PDF_PAGES pages (validate refuses more, TOO_LARGE), each a
 * page object of its own: a page tree that lists one object again and again claims millions of pages in a few bytes
 * (CORRUPT_FILE). The step's time limit (TIMEOUT) bounds the rest.
 *
 * Pages whose text layer is empty or nearly so (scans) are read by OCR (lib/pdf-ocr.ts), at most MAX_OCR_PAGES of
 * them; their text takes their place in page order, and `text.ocr` says which pages were read so and how surely.
 */
import { MediaError } from '../lib/errors.js';
import { excerpt } from '../lib/files.js';
import { nearlyEmpty, ocrPages, type OcrPage } from '../lib/pdf-ocr.js';
import { documentTitle, pageCount, pageText, withPdf } from '../lib/pdf.js';
import type { TextOcr } from '../lib/types.js';
import type { StepFn } from './deps.js';

export const TEXT_ARTIFACT = 'text.txt';

export const extractText: StepFn = async (input, deps, ctx) => {
  const limit = deps.config.maxTextChars;
  const maxPages = deps.config.maxPdfPages;
  const wish = input.instructions?.ocr;
  const languages = typeof wish === 'object' ? wish.languages : deps.config.ocr.languages;
  const { layer, layerCut, total, ocr, title } = await withPdf(input.file.path, async (pdf) => {
    const count = await pageCount(pdf);
    if (count > maxPages) {
      throw new MediaError('TOO_LARGE', `the PDF has ${count} pages; the limit (MAX_PDF_PAGES) is ${maxPages}`);
    }
    const text = new TextBudget(limit);
    const seen = new Map<number, number>();
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
      if (!text.add(page.text.trim())) break;
    }
    const out = text.pages;
    const layerCut = text.cut;
    const title = await documentTitle(pdf);
    // Pages without a text layer, among those read (a document cut at MAX_TEXT_CHARS has no room for more).
    const scanned = out.flatMap((t, i) => (nearlyEmpty(t) ? [i + 1] : []));
    if (scanned.length === 0 || text.full) return { layer: out, layerCut, total: count, ocr: null, title };
    if (wish === false) {
      return { layer: out, layerCut, total: count, ocr: { read: [], notRead: scanned, skipped: 'ocr: false' }, title };
    }
    const toRead = scanned.slice(0, deps.config.ocr.maxPages);
    const { read, resumed } = await ocrPages(pdf, toRead, {
      reader: deps.ocr.get(languages),
      key: languages.join('.'),
      save: (name, data) => deps.artifacts.saveProgress(input.jobId, name, data),
      load: (name) => deps.artifacts.readProgress(input.jobId, name),
      signal: ctx.signal,
      deadline: ctx.deadline,
      log: ctx.log,
      ...(ctx.progress && { progress: ctx.progress }),
    });
    return { layer: out, layerCut, total: count, ocr: { read, notRead: scanned.slice(toRead.length), resumed }, title };
  });
  // The text layer, with each page read by OCR in its place; then MAX_TEXT_CHARS over the whole.
  const byPage = new Map<number, OcrPage>((ocr?.read ?? []).map((p) => [p.page, p]));
  const merged = new TextBudget(limit);
  for (const [i, layerText] of layer.entries()) {
    if (!merged.add(byPage.get(i + 1)?.text || layerText)) break;
  }
  const { pages, chars } = merged;
  // Cut when the text layer was (a page cut short, or pages left unread), or when the pages read by OCR overflow.
  const cut = layerCut || layer.length < total || merged.cut;
  const text = pages.join('\n\f\n');
  const ref = await deps.artifacts.write(input.jobId, TEXT_ARTIFACT, text);
  await deps.artifacts.clearProgress(input.jobId);
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
        ...(ocr && { ocr: ocrSummary(ocr, languages) }),
      },
    },
  };
};

/** Pages of text kept while they fit in `limit` characters; the page that would overflow is cut to fit, and ends it. */
class TextBudget {
  readonly pages: string[] = [];
  chars = 0;
  cut = false;
  constructor(private readonly limit: number) {}

  /** False once the limit is reached: nothing more fits. */
  add(text: string): boolean {
    const room = this.limit - this.chars;
    const kept = text.length > room ? text.slice(0, room) : text;
    this.pages.push(kept);
    this.chars += kept.length;
    if (kept.length < text.length) this.cut = true;
    return !this.cut;
  }

  get full(): boolean {
    return this.chars >= this.limit;
  }
}

/** What the result says of OCR: the pages read so, their mean confidence, and the pages left unread and why. */
function ocrSummary(
  ocr: { read: OcrPage[]; notRead: number[]; resumed?: number; skipped?: string },
  languages: string[],
): TextOcr {
  const words = ocr.read.reduce((n, p) => n + p.words, 0);
  const confidence = words ? Math.round(ocr.read.reduce((n, p) => n + p.confidence * p.words, 0) / words) : 0;
  return {
    engine: 'tesseract.js',
    languages,
    pages: ocr.read.map((p) => p.page),
    confidence,
    ...(ocr.notRead.length > 0 && {
      notRead: ocr.notRead,
      notReadReason: ocr.skipped ?? `more pages without text than MAX_OCR_PAGES`,
    }),
    ...(ocr.resumed ? { resumedPages: ocr.resumed } : {}),
  };
}
