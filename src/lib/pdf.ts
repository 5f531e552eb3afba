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
let loaded: PdfParseModule | null = null;
function loadPdfParse(): Promise<PdfParseModule> {
  loading ??= import('pdf-parse').then((m) => (loaded = m));
  return loading;
}

export async function openPdf(file: string): Promise<PDFParse> {
  const [{ PDFParse, VerbosityLevel }, data] = await Promise.all([loadPdfParse(), fs.readFile(file)]);
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

export function pdfError(err: unknown): unknown {
  if (err instanceof MediaError) return err;
  // pdf.js has thrown, so it is loaded; names cover errors that crossed a realm.
  const { PasswordException, InvalidPDFException, FormatError } = loaded ?? {};
  const is = (cls: (abstract new (...args: never[]) => unknown) | undefined): boolean => !!cls && err instanceof cls;
  if (is(PasswordException) || (err instanceof Error && err.name === 'PasswordException')) {
    return new MediaError('ENCRYPTED', 'the PDF is protected by a password');
  }
  if (
    err instanceof Error &&
    (is(InvalidPDFException) ||
      is(FormatError) ||
      /InvalidPDF|FormatError|Invalid PDF|XRef|startxref/i.test(`${err.name} ${err.message}`))
  ) {
    return new MediaError('CORRUPT_FILE', `the PDF cannot be read: ${err.message}`);
  }
  return err;
}
