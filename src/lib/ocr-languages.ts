/**
 * The OCR languages this installation can read: tesseract language codes, each read from its
 * `@tesseract.js-data/<code>` npm package (nothing is downloaded). Apart from the reader (ocr.ts), so that the
 * configuration and the instructions can check a language without loading it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

export const DEFAULT_OCR_LANGUAGES = ['eng'];
/** A tesseract language code (`eng`, `chi_sim`, `deu_latf`). */
export const OCR_LANGUAGE = /^[a-z]{3}(_[a-z]{2,8})?$/;

/** One language's data: its code and the folder holding `<code>.traineddata.gz`. */
export interface OcrLanguage {
  code: string;
  dir: string;
}

/**
 * Where a language's data is, from its package; null when the package is not installed. The LSTM-only ("best_int")
 * data is preferred: it is smaller and the only model the LSTM engine reads.
 */
export function findLanguage(code: string): OcrLanguage | null {
  if (!OCR_LANGUAGE.test(code)) return null;
  let root: string;
  try {
    root = path.dirname(require.resolve(`@tesseract.js-data/${code}/package.json`));
  } catch {
    return null;
  }
  for (const version of ['4.0.0_best_int', '4.0.0']) {
    const dir = path.join(root, version);
    if (fs.existsSync(path.join(dir, `${code}.traineddata.gz`))) return { code, dir };
  }
  return null;
}

/** Why these languages cannot be read, or null: each missing one named with the package that would bring it. */
export function missingLanguagesProblem(codes: readonly string[]): string | null {
  const bad = codes.filter((c) => !OCR_LANGUAGE.test(c));
  if (bad.length) return `not tesseract language codes (eng, deu, chi_sim…): ${bad.join(', ')}`;
  const missing = codes.filter((c) => findLanguage(c) === null);
  if (!missing.length) return null;
  return `no OCR language data for ${missing.join(', ')}: install ${missing.map((c) => `@tesseract.js-data/${c}`).join(' ')}`;
}
