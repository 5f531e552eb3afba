/** pdf.js (through pdf-parse) with its failures turned into error codes. */
import fs from 'node:fs/promises';
import { InvalidPDFException, PasswordException, FormatError, PDFParse, VerbosityLevel } from 'pdf-parse';
import { MediaError } from './errors.js';

export async function openPdf(file: string): Promise<PDFParse> {
  const data = await fs.readFile(file);
  // ERRORS only: pdf.js warnings go to console.log, and stdout is for results.
  return new PDFParse({ data, verbosity: VerbosityLevel.ERRORS, stopAtErrors: false });
}

/** Calls `fn` with an open document, mapping pdf.js exceptions to ENCRYPTED / CORRUPT_FILE. */
export async function withPdf<T>(file: string, fn: (pdf: PDFParse) => Promise<T>): Promise<T> {
  const pdf = await openPdf(file);
  try {
    return await fn(pdf);
  } catch (err) {
    throw pdfError(err);
  } finally {
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
]);

/**
 * The name of a pdf.js exception. Those raised in pdf.js's worker (in-thread here) reach us as
 * UnknownErrorException with the original's `Name: message` in `details`.
 */
function pdfjsName(err: Error): string {
  const details = (err as { details?: unknown }).details;
  if (err.name === 'UnknownErrorException' && typeof details === 'string') return details.split(':', 1)[0]!;
  return err.name;
}

export function pdfError(err: unknown): unknown {
  if (err instanceof MediaError) return err;
  if (err instanceof PasswordException || (err instanceof Error && err.name === 'PasswordException')) {
    return new MediaError('ENCRYPTED', 'the PDF is protected by a password');
  }
  if (
    err instanceof Error &&
    (err instanceof InvalidPDFException ||
      err instanceof FormatError ||
      MALFORMED.has(pdfjsName(err)) ||
      /InvalidPDF|FormatError|Invalid PDF|XRef|startxref/i.test(`${err.name} ${err.message}`))
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
export function renderError(err: unknown, page: number): unknown {
  const mapped = pdfError(err);
  if (mapped !== err) return mapped;
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string' && CANVAS_REFUSALS.has(code)) {
    return new MediaError('CORRUPT_FILE', `page ${page} cannot be rendered: ${err.message}`, { cause: err });
  }
  return err;
}
