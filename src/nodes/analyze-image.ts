/**
 * analyzeImage: what is in the picture, from the vision model in `deps.ai` (a provider's model through LangChain, or
 * the offline COCO detector), beside statistics computed from the pixels with no model: dominant colour and palette,
 * brightness, sharpness and entropy (libvips), and a 64-bit DCT perceptual hash for near-duplicates. The image is
 * decoded once, to an upright picture of at most 1024 px that feeds both (2048 px when OCR reads it).
 *
 * Text in the picture: the vision provider's, or read offline by OCR (tesseract.js). OCR first asks tesseract's page
 * layout analysis whether the picture has lines of text at all (a fraction of a second), so a photo without text does
 * not pay a full recognition; it then keeps only the words it is sure of, so a landscape yields no text rather than
 * the letters tesseract finds in foliage. With a vision provider (AI_PROVIDERS vision=openai) its text stands and OCR
 * runs only when the job asks for it (`ocr: true` or `{ languages }`); `ocr: false` reads none.
 */
import sharp, { type Channels } from 'sharp';
import { imageError, openImage } from '../lib/image.js';
import type { Analysis, Face } from '../lib/types.js';
import { recordAiUse, type Deps, type StepContext, type StepFn, type StepInput } from './deps.js';
import { pictureOf } from './generate-thumbnails.js';

/** Longer side of the picture a model sees: enough for captions and OCR, small enough to send. */
const MODEL_SIZE = 1024;
/** Longer side of the picture OCR reads: small print on a photo of a notice needs more than MODEL_SIZE. */
const OCR_SIZE = 2048;
/** The most a vision model gets as its sharper copy (`detailSize`), whatever it asks for. */
const MAX_DETAIL_SIZE = 2048;
/** OCR words in a picture below this confidence (0-100) are left out: tesseract rates what it finds in a photo's
 * textures at 20-40, and a clear word at 85-96. */
const PICTURE_MIN_CONFIDENCE = 70;

export const analyzeImage: StepFn = async (input, deps, ctx) => {
  const file = await pictureOf(input, deps);
  const readText = ocrWanted(input, deps);
  const detailSize = Math.min(deps.ai.vision?.detailSize ?? 0, MAX_DETAIL_SIZE);
  const decodeSize = Math.max(readText ? OCR_SIZE : MODEL_SIZE, detailSize);
  let picture: Buffer;
  let original: { width: number; height: number };
  let detail: { data: Buffer; width: number; height: number } | undefined;
  let uprightPixels: { data: Buffer; width: number; height: number } | undefined;
  let size: { width: number; height: number };
  let small: { data: Buffer; info: { width: number; height: number; channels: Channels } };
  let forOcr: { check: Buffer; full: () => Promise<Buffer> } | null = null;
  let stats;
  try {
    const meta = await openImage(file, deps.config.maxImagePixels).metadata();
    original = meta.autoOrient;
    const upright = await openImage(file, deps.config.maxImagePixels)
      .autoOrient()
      .resize(decodeSize, decodeSize, { fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const raw = { raw: { width: upright.info.width, height: upright.info.height, channels: upright.info.channels } };
    if (detailSize > 0) detail = await detailOf(upright, raw, detailSize);
    if (upright.info.channels === 3)
      uprightPixels = { data: upright.data, width: upright.info.width, height: upright.info.height };
    const model = sharp(upright.data, raw).resize(MODEL_SIZE, MODEL_SIZE, { fit: 'inside', withoutEnlargement: true });
    const shown = await model.clone().raw().toBuffer({ resolveWithObject: true });
    size = { width: shown.info.width, height: shown.info.height };
    picture = await model.clone().jpeg({ quality: 85 }).toBuffer();
    if (readText) {
      const full = sharp(upright.data, raw)
        .resize(OCR_SIZE, OCR_SIZE, { fit: 'inside', withoutEnlargement: true })
        .greyscale()
        .png({ compressionLevel: 1 });
      // The full-size copy is encoded only for a picture the layout check finds text in.
      forOcr = {
        check: await model.clone().greyscale().png({ compressionLevel: 1 }).toBuffer(),
        full: async () => {
          try {
            return await full.toBuffer();
          } catch (err) {
            throw imageError(err);
          }
        },
      };
    }
    const reduced = sharp(upright.data, raw).resize(256, 256, { fit: 'inside', withoutEnlargement: true });
    small = await reduced.clone().raw().toBuffer({ resolveWithObject: true });
    stats = await reduced.clone().stats();
  } catch (err) {
    throw imageError(err);
  }
  // The palette's first colour: the mean of the pixels in the most common bin. sharp's `dominant` is the corner of
  // a histogram bin, which for a dark jungle photo came out near white.
  const colours = palette(small.data, small.info.channels);
  const statistics = {
    dominantColor: colours[0]?.color ?? '#000000',
    palette: colours,
    brightness: round(brightness(small.data, small.info.channels), 3),
    sharpness: round(stats.sharpness, 3),
    entropy: round(stats.entropy, 3),
    phash: await perceptualHash(small.data, small.info),
  };
  const ocr = forOcr ? await readPicture(forOcr, input, deps, ctx) : null;
  const ocrText = ocr ? { text: ocr.text, textSource: 'ocr' as const, textConfidence: ocr.confidence } : {};
  const vision = deps.ai.vision;
  if (!vision) {
    const analysis: Analysis = { provider: 'local', labels: [], ...statistics, ...ocrText };
    return { status: 'succeeded', results: { analysis } };
  }
  const seen = await vision.analyze({ image: picture, mime: 'image/jpeg', ...size, detail }, { signal: ctx.signal });
  const faces = seen.faces?.map((f) => inPixels(f, original));
  await recordAiUse(deps, input, 'analyzeImage', 'vision', seen);
  if (seen.faces && uprightPixels && facesWanted(input, deps))
    await recordFaces(input, deps, ctx, uprightPixels, seen.faces, faces ?? []);
  const analysis: Analysis = {
    provider: seen.provider,
    model: seen.model,
    labels: seen.labels,
    caption: seen.caption,
    tags: seen.tags,
    text: seen.text,
    ...(seen.text && { textSource: 'vision' as const }),
    safety: seen.safety,
    ...(faces && { faces, faceCount: faces.length }),
    usage: seen.usage,
    ...statistics,
    // Asked for by the job: what OCR read stands beside the model's caption.
    ...ocrText,
  };
  return { status: 'succeeded', results: { analysis } };
};

/** The upright picture as the vision model's sharper copy: RGB, at most `side` px. */
async function detailOf(
  upright: { data: Buffer; info: { width: number; height: number; channels: Channels } },
  raw: { raw: { width: number; height: number; channels: Channels } },
  side: number,
): Promise<{ data: Buffer; width: number; height: number } | undefined> {
  if (upright.info.channels !== 3) return undefined;
  if (Math.max(upright.info.width, upright.info.height) <= side)
    return { data: upright.data, width: upright.info.width, height: upright.info.height };
  const { data, info } = await sharp(upright.data, raw)
    .resize(side, side, { fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Whether the picture's faces are described, kept and placed in people: FACES=on, and the job did not say no. */
function facesWanted(input: StepInput, deps: Deps): boolean {
  return deps.config.ai.faces && input.instructions?.faces !== false && !!deps.jobs.people;
}

/** Longer side of a face's crop artifact, at most (never enlarged). */
const CROP_SIDE = 256;

/**
 * Each face's descriptor (from the vision model, when it describes faces) and its crop (`face-<n>.jpg`, n its place
 * in `analysis.faces`), then the faces recorded and placed in people in one store transaction. The crops are written
 * on every run and the faces once: a run killed after recording and run again leaves the same faces and crops.
 */
async function recordFaces(
  input: StepInput,
  deps: Deps,
  ctx: StepContext,
  picture: { data: Buffer; width: number; height: number },
  found: Face[],
  boxes: Face[],
): Promise<void> {
  const vision = deps.ai.vision;
  const descriptors = vision?.describeFaces
    ? await vision.describeFaces(
        picture,
        found.map((f) => f.box),
        { signal: ctx.signal },
      )
    : found.map(() => null);
  const raw = { raw: { width: picture.width, height: picture.height, channels: 3 as const } };
  const faces = [];
  for (const [i, face] of found.entries()) {
    ctx.signal.throwIfAborted();
    const { x, y, width, height } = face.box;
    const left = Math.min(picture.width - 1, Math.floor(x * picture.width));
    const top = Math.min(picture.height - 1, Math.floor(y * picture.height));
    const region = {
      left,
      top,
      width: Math.max(1, Math.min(picture.width - left, Math.round(width * picture.width))),
      height: Math.max(1, Math.min(picture.height - top, Math.round(height * picture.height))),
    };
    let jpeg: Buffer;
    try {
      jpeg = await sharp(picture.data, raw)
        .extract(region)
        .resize(CROP_SIDE, CROP_SIDE, { fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality: 85 })
        .toBuffer();
    } catch (err) {
      throw imageError(err);
    }
    const crop = `face-${i}.jpg`;
    await deps.artifacts.write(input.jobId, crop, jpeg);
    faces.push({ index: i, box: boxes[i]!.box, score: face.score, descriptor: descriptors[i] ?? null, crop });
  }
  if (faces.length > 0) await deps.jobs.people?.recordFaces(input.jobId, faces);
}

/** A face whose box is in fractions of the picture, in pixels of the upright original. */
function inPixels(face: Face, original: { width: number; height: number }): Face {
  const { x, y, width, height } = face.box;
  const px = (v: number, of: number) => Math.round(v * of);
  return {
    box: {
      x: px(x, original.width),
      y: px(y, original.height),
      width: px(width, original.width),
      height: px(height, original.height),
    },
    score: face.score,
  };
}

/** Whether OCR reads this picture: see the comment at the top. */
function ocrWanted(input: StepInput, deps: Deps): boolean {
  const wish = input.instructions?.ocr;
  if (wish === false) return false;
  if (wish !== undefined) return true;
  return deps.config.ai.providers.vision !== 'openai';
}

/** The confident words of a picture, or null when it has none (or no lines of text at all). */
async function readPicture(
  png: { check: Buffer; full: () => Promise<Buffer> },
  input: StepInput,
  deps: Deps,
  ctx: StepContext,
): Promise<{ text: string; confidence: number } | null> {
  const wish = input.instructions?.ocr;
  const reader = deps.ocr.get(typeof wish === 'object' ? wish.languages : deps.config.ocr.languages);
  if (!(await reader.hasText(png.check, { signal: ctx.signal }))) return null;
  const read = await reader.recognize(await png.full(), { minConfidence: PICTURE_MIN_CONFIDENCE, signal: ctx.signal });
  return read.words > 0 ? { text: read.text, confidence: read.confidence } : null;
}

function hex(r: number, g: number, b: number): string {
  return `#${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
}

function round(n: number, d: number): number {
  const f = 10 ** d;
  return Math.round(n * f) / f;
}

/** Mean relative luminance, 0 (black) to 1 (white). */
function brightness(data: Buffer, channels: number): number {
  let sum = 0;
  const n = data.length / channels;
  for (let i = 0; i < data.length; i += channels) {
    sum += 0.2126 * data[i]! + 0.7152 * data[i + 1]! + 0.0722 * data[i + 2]!;
  }
  return n ? sum / n / 255 : 0;
}

/** The five most common colours after quantising each channel to 3 bits, with the share of pixels each covers. */
function palette(data: Buffer, channels: number): { color: string; share: number }[] {
  const bins = new Map<number, { n: number; r: number; g: number; b: number }>();
  const total = data.length / channels;
  for (let i = 0; i < data.length; i += channels) {
    const r = data[i]!;
    const g = data[i + 1]!;
    const b = data[i + 2]!;
    const key = ((r >> 5) << 6) | ((g >> 5) << 3) | (b >> 5);
    const bin = bins.get(key) ?? { n: 0, r: 0, g: 0, b: 0 };
    bin.n += 1;
    bin.r += r;
    bin.g += g;
    bin.b += b;
    bins.set(key, bin);
  }
  return [...bins.values()]
    .sort((a, b) => b.n - a.n)
    .slice(0, 5)
    .map((bin) => ({ color: hex(bin.r / bin.n, bin.g / bin.n, bin.b / bin.n), share: round(bin.n / total, 3) }));
}

/** pHash: 32x32 greyscale, 2-D DCT, the 8x8 lowest frequencies (less DC) against their median, as 16 hex digits. */
async function perceptualHash(
  data: Buffer,
  info: { width: number; height: number; channels: Channels },
): Promise<string> {
  const N = 32;
  const grey = await sharp(data, { raw: info }).greyscale().resize(N, N, { fit: 'fill' }).raw().toBuffer();
  const cos = Array.from({ length: 8 }, (_, u) =>
    Array.from({ length: N }, (_, x) => Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N))),
  );
  const coeffs: number[] = [];
  for (let u = 0; u < 8; u++) {
    for (let v = 0; v < 8; v++) {
      let sum = 0;
      for (let y = 0; y < N; y++) {
        const cy = cos[u]![y]!;
        for (let x = 0; x < N; x++) sum += grey[y * N + x]! * cy * cos[v]![x]!;
      }
      coeffs.push(sum);
    }
  }
  const ac = coeffs.slice(1);
  const median = [...ac].sort((a, b) => a - b)[Math.floor(ac.length / 2)]!;
  let bits = 0n;
  for (const c of coeffs) bits = (bits << 1n) | (c > median ? 1n : 0n);
  return bits.toString(16).padStart(16, '0');
}
