/** renderPreview: page 1 of the PDF rendered by pdf.js, then the same thumbnail code as images. */
import { MediaError } from '../lib/errors.js';
import { renderError, withPdf } from '../lib/pdf.js';
import type { StepFn } from './deps.js';
import { thumbnailsFrom } from './generate-thumbnails.js';

export const renderPreview: StepFn = async (input, deps) => {
  const width = Math.max(...deps.config.thumbnails.widths);
  const page = await withPdf(input.file.path, async (pdf) => {
    const shot = await pdf
      .getScreenshot({ partial: [1], desiredWidth: width, imageBuffer: true, imageDataUrl: false })
      .catch((err: unknown) => {
        throw renderError(err, 1);
      });
    return shot.pages[0]?.data;
  });
  if (!page || page.length === 0) throw new MediaError('CORRUPT_FILE', 'page 1 could not be rendered');
  return thumbnailsFrom(Buffer.from(page), input.jobId, deps);
};
