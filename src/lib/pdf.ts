/**
 * pdf.js (through pdf-parse) with its failures turned into error codes. pdf.js is loaded on first use: it costs
 * 150 MB of memory and a second of start-up in every thread that imports it, and most threads never open a PDF.
 */
import fs from 'node:fs/promises';
import type * as PdfParseTypes from 'pdf-parse';
import { MediaError } from './errors.js';

type PdfParseModule = typeof PdfParseTypes;
type PDFParse = PdfParseTypes.PDFParse;
let loading: Promise<PdfParseModule> | null = null;
function loadPdfParse(): Promise<PdfParseModule> {
  loading ??= import('pdf-parse');
  return loading;
}

/**
 * pdf.js leaves out an image larger than this (width x height, as its dictionary claims), as MAX_IMAGE_PIXELS's
 * default refuses such a picture: one that claimed 4294967295 pixels across kept pdf.js busy for 12 s before the
 * canvas refused it.
 */
const MAX_PDF_IMAGE_PIXELS = 250_000_000;

async function openPdfData(data: Uint8Array): Promise<PDFParse> {
  const { PDFParse, VerbosityLevel } = await loadPdfParse();
  // ERRORS only: pdf.js warnings go to console.log, and stdout is for results.
  return new PDFParse({
    data,
    verbosity: VerbosityLevel.ERRORS,
    stopAtErrors: false,
    maxImageSize: MAX_PDF_IMAGE_PIXELS,
  });
}

/** A document open in this thread, and the first pdf.js failure nobody was waiting for while it was. */
interface Watch {
  orphan?: MediaError;
}
const open = new Set<Watch>();
let watching = false;

/**
 * pdf.js fetches the first level of a page tree ahead of time and nobody awaits those fetches: on a damaged cross-
 * reference table they reject unhandled, which ends the thread (INTERNAL, three attempts). Such a rejection is
 * charged to the documents open in this thread instead (one, in a step thread), which fail CORRUPT_FILE; any other
 * unhandled rejection is thrown, as Node would.
 */
function watchOrphans(): void {
  if (watching) return;
  watching = true;
  process.on('unhandledRejection', (reason) => {
    const mapped = pdfError(reason);
    if (!(mapped instanceof MediaError))
      throw reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`);
    for (const doc of open) doc.orphan ??= mapped;
  });
}

/** A one-page PDF with one line of text in a standard font: what warmPdf reads. */
const TINY_PDF = [
  '%PDF-1.4',
  '1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj',
  '2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj',
  '3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] /Contents 4 0 R',
  '  /Resources <</Font <</F1 5 0 R>>>>>> endobj',
  '4 0 obj <</Length 37>> stream',
  'BT /F1 12 Tf 10 30 Td (warm up) Tj ET',
  'endstream endobj',
  '5 0 obj <</Type /Font /Subtype /Type1 /BaseFont /Helvetica>> endobj',
  'trailer <</Root 1 0 R>>',
  '%%EOF',
].join('\n');

/**
 * Loads pdf.js and reads a tiny document with it (its text, or its page drawn), so that this thread's first real
 * PDF does not also pay for pdf.js's own first-use set-up (its fake worker, fonts, the canvas).
 */
export async function warmPdf(use: 'text' | 'render'): Promise<void> {
  await withPdfData(Buffer.from(TINY_PDF, 'latin1'), async (pdf) => {
    if (use === 'text') await pdf.getText({ partial: [1] });
    else await renderPage(pdf, 1, 64);
  });
}

/** Calls `fn` with an open document, mapping pdf.js exceptions to ENCRYPTED / CORRUPT_FILE. */
export async function withPdf<T>(file: string, fn: (pdf: PDFParse) => Promise<T>): Promise<T> {
  return withPdfData(await fs.readFile(file), fn);
}

async function withPdfData<T>(data: Uint8Array, fn: (pdf: PDFParse) => Promise<T>): Promise<T> {
  watchOrphans();
  const pdf = await openPdfData(data);
  const watch: Watch = {};
  open.add(watch);
  try {
    const result = await fn(pdf);
    // Node reports a rejection nobody handled once the pending callbacks have run: wait for that before judging.
    await new Promise((resolve) => setImmediate(resolve));
    if (watch.orphan) throw watch.orphan;
    return result;
  } catch (err) {
    throw pdfError(err);
  } finally {
    open.delete(watch);
    await pdf.destroy().catch(() => undefined);
  }
}

/**
 * pdf.js's own exceptions for content it cannot read: the document's structure, its streams, an embedded JPEG or
 * JPEG 2000 image. All mean the bytes, not the reader: the same file fails the same way on every attempt.
 */
const MALFORMED = new Set([
  'InvalidPDFException',
  'FormatError',
  'ParserEOFException',
  'XRefEntryException',
  'XRefParseException',
  'MissingDataException',
  'JpegError',
  'DNLMarkerError',
  'EOIMarkerError',
  'JpxError',
  // Whatever pdf.js's worker (in-thread here) raises while it parses arrives as UnknownErrorException, the
  // original's `Name: message` in `details`: the exceptions above, and plain Errors of its own checks on a malformed
  // dictionary ("Invalid argument for stringToBytes" for an encryption key that is not a string).
  'UnknownErrorException',
]);

export function pdfError(err: unknown): unknown {
  if (err instanceof MediaError) return err;
  // pdf.js names its exceptions after their classes; names also hold for errors that crossed from its worker.
  if (err instanceof Error && err.name === 'PasswordException') {
    return new MediaError('ENCRYPTED', 'the PDF is protected by a password');
  }
  if (
    err instanceof Error &&
    (MALFORMED.has(err.name) || /InvalidPDF|FormatError|Invalid PDF|XRef|startxref/i.test(`${err.name} ${err.message}`))
  ) {
    return new MediaError('CORRUPT_FILE', `the PDF cannot be read: ${err.message}`, { cause: err });
  }
  return err;
}

/**
 * Node-API status codes the canvas (@napi-rs/canvas) gives its errors: a page asking it to draw a string it cannot
 * take (a NUL from a broken font's character map) or a surface it cannot make (an image 10^20 pixels wide).
 */
const CANVAS_REFUSALS = new Set(['InvalidArg', 'GenericFailure']);

/** A failure while rendering a page: pdf.js's codes as above, and what the canvas refused to draw as CORRUPT_FILE. */
function renderError(err: unknown, page: number): unknown {
  const mapped = pdfError(err);
  if (mapped !== err) return mapped;
  // pdf.js compiles inline images away before drawing; a damaged content stream can leave their operators for the
  // canvas, which refuses them ("Should not call beginImageData").
  if (err instanceof Error && /^Should not call \w+$/.test(err.message)) {
    return new MediaError('CORRUPT_FILE', `page ${page} cannot be rendered: ${err.message}`, { cause: err });
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && CANVAS_REFUSALS.has(code)) {
    return new MediaError('CORRUPT_FILE', `page ${page} cannot be rendered: ${err.message}`, { cause: err });
  }
  return err;
}

/** The part of pdf.js's canvas factory (NodeCanvasFactory over @napi-rs/canvas) that frees a canvas. */
interface CanvasFactory {
  destroy(canvasAndContext: { canvas: unknown; context: unknown }): void;
}

/** The parts of pdf.js's document and page used here. */
interface PdfDocument {
  numPages: number;
  canvasFactory: CanvasFactory;
  getPage(n: number): Promise<PdfPage>;
}
interface PdfPage {
  /** The page's object in the file. */
  ref: { num: number; gen: number } | null;
  getViewport(params: { scale: number }): { width: number; height: number };
  cleanup(): void;
  getTextContent(): Promise<{ items: ({ str: string; transform: number[]; hasEOL?: boolean } | object)[] }>;
}

/** What PDFParse keeps private: its pdf.js document (load() returns it, and reuses it) and its text of one page. */
interface PdfParseInternals {
  load(): Promise<PdfDocument>;
  getPageText(page: PdfPage, params: { pageJoiner: string }, total: number): Promise<string>;
}
const internals = (pdf: PDFParse): PdfParseInternals => pdf as unknown as PdfParseInternals;

/** The number of pages the document's page tree claims. */
export async function pageCount(pdf: PDFParse): Promise<number> {
  return (await internals(pdf).load()).numPages;
}

/**
 * The text of page `n` (from 1), as getText gives it, and the page's object number. Read directly: getText with
 * `partial: [n]` looks at every page number up to the document's count to find page n.
 */
export async function pageText(pdf: PDFParse, n: number): Promise<{ text: string; object: number | null }> {
  const doc = await internals(pdf).load();
  const page = await doc.getPage(n);
  try {
    const text = await internals(pdf).getPageText(page, { pageJoiner: '' }, doc.numPages);
    return { text, object: page.ref?.num ?? null };
  } finally {
    page.cleanup();
  }
}

/** Page `n`'s size in points (1/72 inch) as it is shown, its rotation applied. */
export async function pageSize(pdf: PDFParse, n: number): Promise<{ width: number; height: number }> {
  const page = await (await internals(pdf).load()).getPage(n);
  try {
    const { width, height } = page.getViewport({ scale: 1 });
    return { width, height };
  } finally {
    page.cleanup();
  }
}

/**
 * pdf.js frees a canvas by resizing it to 0×0, and after a failed render it does so in a promise callback that
 * nothing awaits. @napi-rs/canvas cannot resize a canvas it could not allocate (47413×4683 from a bit-flipped
 * transform) and throws: the render then never settles, and the rejection, unhandled, ends the step thread. Such a
 * canvas is dropped instead (pdf.js drops it next anyway), so the render fails with its own error.
 */
function dropCanvasesThatCannotShrink(factory: CanvasFactory): void {
  const destroy = factory.destroy.bind(factory);
  factory.destroy = (canvasAndContext) => {
    try {
      destroy(canvasAndContext);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'GenericFailure') throw err;
      canvasAndContext.canvas = null;
      canvasAndContext.context = null;
    }
  };
}

/** Page `page` rendered `width` pixels wide, as PNG bytes (undefined when pdf.js draws nothing). */
export async function renderPage(pdf: PDFParse, page: number, width: number): Promise<Uint8Array | undefined> {
  // getScreenshot reuses the document load() returns.
  const doc = await internals(pdf).load();
  dropCanvasesThatCannotShrink(doc.canvasFactory);
  const shot = await pdf
    .getScreenshot({ partial: [page], desiredWidth: width, imageBuffer: true, imageDataUrl: false })
    .catch((err: unknown) => {
      throw renderError(err, page);
    });
  return shot.pages[0]?.data;
}

/** A title that names the document, not the file or the tool it was made with. */
function usableTitle(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const title = value.replace(/\s+/g, ' ').trim();
  if ((title.match(/\p{L}/gu) ?? []).length < 3 || title.length > 300) return null;
  if (/^(untitled|document\d*|title|no title|microsoft word\b.*)$/i.test(title)) return null;
  if (/\.(docx?|pdf|tex|dvi|indd|qxd|odt|rtf|pptx?|xlsx?)$/i.test(title)) return null;
  return title;
}

/**
 * The document's title: its info dictionary's Title, else its XMP dc:title, else the line set in the largest type on
 * its first page (a run of at least two words or eight letters; a drop capital or a page number is passed over).
 */
export async function documentTitle(pdf: PDFParse): Promise<string | null> {
  const info = await pdf.getInfo({ partial: [1] });
  const stated =
    usableTitle((info.info as Record<string, unknown> | undefined)?.Title) ??
    usableTitle(info.metadata?.get('dc:title'));
  if (stated) return stated;
  const doc = await internals(pdf).load();
  if (doc.numPages < 1) return null;
  const page = await doc.getPage(1);
  try {
    const items = (await page.getTextContent()).items.filter(
      (i): i is { str: string; transform: number[]; hasEOL?: boolean } => 'str' in i && 'transform' in i,
    );
    const size = (i: { transform: number[] }): number =>
      Math.round(Math.hypot(i.transform[2] ?? 0, i.transform[3] ?? 0) * 10) / 10;
    const sizes = [...new Set(items.filter((i) => i.str.trim()).map(size))].sort((a, b) => b - a);
    for (const top of sizes.slice(0, 4)) {
      // The first run of text in that size, across the lines it wraps over.
      let line = '';
      let started = false;
      for (const item of items) {
        if (!item.str.trim()) {
          if (started) line += ' ';
          continue;
        }
        if (Math.abs(size(item) - top) > top * 0.05) {
          if (started) break;
          continue;
        }
        started = true;
        line += item.str + (item.hasEOL ? ' ' : '');
      }
      const title = usableTitle(line.slice(0, 400));
      if (title && (title.includes(' ') || title.length >= 8)) return title;
    }
    return null;
  } finally {
    page.cleanup();
  }
}
