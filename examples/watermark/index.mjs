// A plugin step: a watermarked copy of every picture, as the artifact `watermarked.jpg`.
// PLUGINS=./examples/watermark/index.mjs; per job: "instructions": { "steps": { "watermark": { "text": "ACME" } } }
import sharp from 'sharp';
import { z } from 'zod';

const Options = z.strictObject({
  text: z.string().min(1).max(80).default('media-orchestrator'),
  /** Opacity of the text, 0.05 to 1. */
  opacity: z.number().min(0.05).max(1).default(0.5),
});

const escapeXml = (s) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** @type {import('media-orchestrator/plugin').StepDefinition<z.infer<typeof Options>>} */
export default {
  name: 'watermark',
  fileTypes: ['image'],
  after: 'generateThumbnails',
  queue: 'image',
  optional: true,
  timeoutMs: 60_000,
  attempts: 2,
  options: Options,
  async run(input, ctx) {
    // The picture upright (EXIF orientation), at most 2048 pixels wide: a watermark is for sharing, not archiving.
    const base = sharp(input.file.path, { limitInputPixels: 250_000_000 }).rotate().resize({
      width: 2048,
      withoutEnlargement: true,
    });
    const { data, info } = await base.toBuffer({ resolveWithObject: true });
    ctx.progress(0.5);
    const size = Math.max(12, Math.round(info.width / 20));
    const svg = Buffer.from(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${info.width}" height="${info.height}">` +
        `<text x="50%" y="${info.height - size}" font-family="sans-serif" font-size="${size}" fill="white" ` +
        `fill-opacity="${input.options.opacity}" stroke="black" stroke-opacity="${input.options.opacity / 2}" ` +
        `text-anchor="middle">${escapeXml(input.options.text)}</text></svg>`,
    );
    const artifact = await ctx.artifacts.produce('watermarked.jpg', async (file) => {
      await sharp(data)
        .composite([{ input: svg, top: 0, left: 0 }])
        .jpeg({ quality: 85 })
        .toFile(file);
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return {
      url: artifact.url,
      bytes: artifact.bytes,
      width: info.width,
      height: info.height,
      text: input.options.text,
    };
  },
};
