/**
 * The pages of a PDF that have no text layer (scans), read by OCR: each rendered with pdf.js at about 300 dpi (bounded
 * in pixels), then read by tesseract. Pages go in batches; each batch's text is saved as soon as it is read, so an
 * attempt that is stopped (its time limit) or killed (its process) leaves what it read to the next attempt, which
 * starts at the first batch not saved.
 */
import type { PDFParse } from 'pdf-parse';
import { MediaError } from './errors.js';
import type { Logger } from './log.js';
import type { OcrReader } from './ocr.js';
import { pageSize, renderPage } from './pdf.js';

/** A page whose text layer has fewer letters and digits than this is read by OCR (a scan with a page number). */
export const NEARLY_EMPTY_CHARS = 16;
export const OCR_BATCH_PAGES = 10;
const OCR_DPI = 300;
/** A page is rendered at most this many pixels on its longer side and in all: an A4 page at 300 dpi is 8.7 MP. */
const MAX_OCR_SIDE = 4200;
const MAX_OCR_PIXELS = 12_000_000;
/** Words tesseract is less sure of on a scanned page are left out. */
const PAGE_MIN_CONFIDENCE = 40;

export function nearlyEmpty(text: string): boolean {
  return (text.match(/[\p{L}\p{N}]/gu)?.length ?? 0) < NEARLY_EMPTY_CHARS;
}

export interface OcrPage {
  page: number;
  text: string;
  confidence: number;
  words: number;
}

export interface OcrPagesResult {
  /** Pages read, in page order. */
  read: OcrPage[];
  /** Pages taken from batches an earlier attempt saved. */
  resumed: number;
}

export interface OcrPagesOptions {
  reader: OcrReader;
  /** Names the saved batches: a job read again in other languages does not take the old text. */
  key: string;
  save(name: string, data: string): Promise<void>;
  load(name: string): Promise<string | null>;
  signal: AbortSignal;
  deadline?: number;
  log: Logger;
  /** How far the reading is, as a fraction of `pages` (saved batches count as read). */
  progress?: (fraction: number) => void;
}

/**
 * What a batch may take, from the pages read so far: half as long again, and the second it takes to put the text
 * together after the last batch (a machine busy with other work reads slower from one batch to the next).
 */
const batchMs = (msPerPage: number, pages: number): number => msPerPage * pages * 1.5 + 1000;

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Reads `pages` (from 1) by OCR, in batches that are saved as they finish. */
export async function ocrPages(
  pdf: PDFParse,
  pages: readonly number[],
  opts: OcrPagesOptions,
): Promise<OcrPagesResult> {
  const read: OcrPage[] = [];
  let resumed = 0;
  /** How long each page read in this attempt took: the first (which also starts tesseract) left out of estimates. */
  const times: number[] = [];
  let done = 0;
  for (let first = 0; first < pages.length; first += OCR_BATCH_PAGES) {
    const batch = pages.slice(first, first + OCR_BATCH_PAGES);
    const name = `ocr-${opts.key}-${batch[0]}-${batch.at(-1)}.json`;
    const saved = parseBatch(await opts.load(name), batch);
    if (saved) {
      read.push(...saved);
      resumed += saved.length;
      done += saved.length;
      opts.progress?.(done / pages.length);
      continue;
    }
    // Stop before a batch that would not finish in time, keeping what is saved: the next attempt goes on from here.
    const msPerPage = median(times.length > 1 ? times.slice(1) : times);
    if (opts.deadline !== undefined && msPerPage > 0 && Date.now() + batchMs(msPerPage, batch.length) > opts.deadline) {
      throw new MediaError(
        'TIMEOUT',
        `OCR stopped before page ${batch[0]} to keep within the step's time limit; ${done} of ${pages.length} pages are read and saved, and the next attempt goes on from there`,
        { retryable: true },
      );
    }
    const out: OcrPage[] = [];
    for (const page of batch) {
      opts.signal.throwIfAborted();
      const started = performance.now();
      // A page that cannot be drawn (a damaged picture in it) is left unread, not the whole document failed: its text
      // layer, if any, stands.
      out.push(
        await ocrPage(pdf, page, opts).catch((err: unknown) => {
          if (err instanceof MediaError && err.code === 'CORRUPT_FILE') {
            opts.log.warn({ page, err: err.message }, 'page could not be drawn for OCR');
            return { page, text: '', confidence: 0, words: 0 };
          }
          throw err;
        }),
      );
      times.push(performance.now() - started);
      done += 1;
      opts.log.info({ page, done, of: pages.length }, 'page read by OCR');
      opts.progress?.(done / pages.length);
    }
    await opts.save(name, JSON.stringify({ pages: out }));
    read.push(...out);
  }
  return { read, resumed };
}

async function ocrPage(pdf: PDFParse, page: number, opts: OcrPagesOptions): Promise<OcrPage> {
  const size = await pageSize(pdf, page);
  const width = renderWidth(size.width, size.height);
  const png = await renderPage(pdf, page, width);
  if (!png) return { page, text: '', confidence: 0, words: 0 };
  const dpi = (width / Math.max(size.width, 1)) * 72;
  const text = await opts.reader.recognize(Buffer.from(png), {
    minConfidence: PAGE_MIN_CONFIDENCE,
    dpi,
    signal: opts.signal,
  });
  return { page, ...text };
}

/** The width to render a page `w` x `h` points at: 300 dpi, within MAX_OCR_SIDE and MAX_OCR_PIXELS. */
export function renderWidth(w: number, h: number): number {
  const pw = Math.max(w, 1);
  const ph = Math.max(h, 1);
  let scale = OCR_DPI / 72;
  scale = Math.min(scale, MAX_OCR_SIDE / Math.max(pw, ph), Math.sqrt(MAX_OCR_PIXELS / (pw * ph)));
  return Math.max(16, Math.floor(pw * scale));
}

/** A saved batch, when it holds exactly these pages. */
function parseBatch(json: string | null, batch: readonly number[]): OcrPage[] | null {
  if (json === null) return null;
  try {
    const { pages } = JSON.parse(json) as { pages: OcrPage[] };
    if (pages.length !== batch.length || pages.some((p, i) => p.page !== batch[i] || typeof p.text !== 'string'))
      return null;
    return pages;
  } catch {
    return null;
  }
}
