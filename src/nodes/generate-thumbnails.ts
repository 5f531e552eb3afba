/** generateThumbnails: the configured widths (EXIF-oriented, never enlarged, first frame) plus a ThumbHash placeholder. */
import { MediaError } from '../lib/errors.js';
import { pictureSource } from '../lib/heif.js';
import { renderThumbnails } from '../lib/image.js';
import { thumbnailWidthsProblem } from '../lib/instructions.js';
import type { Deps, StepFn, StepInput } from './deps.js';

export const generateThumbnails: StepFn = async (input, deps) =>
  thumbnailsFrom(await pictureOf(input, deps), input, deps);

/** The file, or the decoded copy of a HEIF photo that validate made (lib/heif.ts). */
export function pictureOf(input: StepInput, deps: Deps): Promise<string | Buffer> {
  return pictureSource(input.file.path, input.fileInfo?.ext, (name) => deps.artifacts.localPath(input.jobId, name), {
    maxPixels: deps.config.maxImagePixels,
    memoryMb: deps.config.stepMemoryMb,
  });
}

/**
 * Shared by posterFrame and renderPreview, which feed a decoded frame or page into the same code. The job's
 * instructions choose widths, format, quality and fit over the configured ones.
 */
export async function thumbnailsFrom(source: string | Buffer, input: StepInput, deps: Deps) {
  const jobId = input.jobId;
  const wish = input.instructions?.thumbnails;
  const widths = wish?.widths ?? deps.config.thumbnails.widths;
  const format = wish?.format ?? deps.config.thumbnails.format;
  const quality = wish?.quality ?? deps.config.thumbnails.quality;
  // Every source of widths (the job, its profile, THUMBNAIL_WIDTHS) is checked where it is read; this holds for
  // whatever reaches the step.
  const problem = thumbnailWidthsProblem(widths);
  if (problem) throw new MediaError('INVALID_INPUT', `thumbnails.widths: ${problem}`);
  const { thumbnails, placeholder, perceptualHash } = await renderThumbnails(
    source,
    {
      widths,
      format,
      quality,
      fit: wish?.fit ?? 'inside',
      maxPixels: deps.config.maxImagePixels,
      memoryMb: deps.config.stepMemoryMb,
    },
    (name, data) => deps.artifacts.write(jobId, name, data),
  );
  return {
    status: 'succeeded' as const,
    results: {
      thumbnails,
      placeholder: { kind: 'thumbhash' as const, value: placeholder },
      // For near duplicates: photos only (a poster frame or a first page says too little of a whole file).
      ...(perceptualHash &&
        input.fileType === 'image' && { perceptualHash: { kind: 'dhash' as const, value: perceptualHash } }),
    },
  };
}
