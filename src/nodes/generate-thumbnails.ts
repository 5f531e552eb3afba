/** generateThumbnails: the configured widths (EXIF-oriented, never enlarged, first frame) plus a ThumbHash placeholder. */
import { renderThumbnails } from '../lib/image.js';
import type { Deps, StepFn } from './deps.js';

export const generateThumbnails: StepFn = async (input, deps) => thumbnailsFrom(input.file.path, input.jobId, deps);

/** Shared by posterFrame and renderPreview, which feed a decoded frame or page into the same code. */
export async function thumbnailsFrom(source: string | Buffer, jobId: string, deps: Deps) {
  const { widths, format, quality } = deps.config.thumbnails;
  const { thumbnails, placeholder } = await renderThumbnails(
    source,
    { widths, format, quality, maxPixels: deps.config.maxImagePixels },
    (name, data) => deps.artifacts.write(jobId, name, data),
  );
  return {
    status: 'succeeded' as const,
    results: { thumbnails, placeholder: { kind: 'thumbhash' as const, value: placeholder } },
  };
}
