/** renderPreview: page 1 of the PDF rendered by pdf.js, then the same thumbnail code as images. */
import { MediaError } from '../lib/errors.js';
import { renderPage, withPdf } from '../lib/pdf.js';
import type { StepFn } from './deps.js';
import { thumbnailsFrom } from './generate-thumbnails.js';

export const renderPreview: StepFn = async (input, deps) => {
  const width = Math.max(...deps.config.thumbnails.widths);
  const page = await withPdf(input.file.path, (pdf) => renderPage(pdf, 1, width));
  if (!page || page.length === 0) throw new MediaError('CORRUPT_FILE', 'page 1 could not be rendered');
  return thumbnailsFrom(Buffer.from(page), input, deps);
};
