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

export function pdfError(err: unknown): unknown {
  if (err instanceof MediaError) return err;
  if (err instanceof PasswordException || (err instanceof Error && err.name === 'PasswordException')) {
    return new MediaError('ENCRYPTED', 'the PDF is protected by a password');
  }
  if (
    err instanceof Error &&
    (err instanceof InvalidPDFException ||
      err instanceof FormatError ||
      /InvalidPDF|FormatError|Invalid PDF|XRef|startxref/i.test(`${err.name} ${err.message}`))
  ) {
    return new MediaError('CORRUPT_FILE', `the PDF cannot be read: ${err.message}`);
  }
  return err;
}
