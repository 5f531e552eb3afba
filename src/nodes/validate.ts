/**
 * validate: is this a file we accept, and is it intact? The type comes from the bytes (magic numbers), then each
 * kind gets a real decodability check: images are decoded (small), audio/video are probed and their first frames
 * decoded, PDFs are opened. Bad input throws MediaError with its code; nothing here is retried.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileTypeFromFile } from 'file-type';
import { MediaError } from '../lib/errors.js';
import { readHead, sha256File } from '../lib/files.js';
import { checkHeifLimits, decodeHeif, encodeDecoded, isHeifExt, readHeifHeader } from '../lib/heif.js';
import { imageError, openImage } from '../lib/image.js';
import {
  byElementaryStream,
  byMatroskaDocType,
  classify,
  FALLBACK_MIME,
  formatsToTry,
  mediaInput,
  type Detected,
} from '../lib/media-types.js';
import { withPdf } from '../lib/pdf.js';
import { audioStreams, probeMedia, videoStreams } from '../lib/probe.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { FileType } from '../lib/types.js';
import type { Deps, StepContext, StepFn, StepInput } from './deps.js';

const PROBE_TIMEOUT_MS = 30_000;

export const validate: StepFn = async (input, deps, ctx) => {
  // Inputs that skipped the intake schema (a LangGraph Studio run, an SDK call) may have no file at all.
  const file = (input.file as Partial<StepInput['file']> | undefined)?.path;
  if (typeof file !== 'string' || file.length === 0)
    throw new MediaError('INVALID_INPUT', 'the job input names no file: give { "file": { "path": "…" } }');
  // Name the file as the producer did, never the server-side folder it sits in.
  const shown = JSON.stringify(input.file.name ?? path.basename(file));
  const stat = await fs.stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') {
      throw new MediaError('FILE_NOT_FOUND', `the file ${shown} does not exist`);
    }
    if (err.code === 'EACCES')
      throw new MediaError('FILE_NOT_FOUND', `the file ${shown} cannot be read (permission denied)`);
    throw err;
  });
  if (!stat.isFile()) throw new MediaError('FILE_NOT_FOUND', `${shown} is not a regular file`);
  if (stat.size === 0) throw new MediaError('EMPTY_FILE', 'the file is empty (0 bytes)');
  if (stat.size > deps.config.maxFileBytes) {
    throw new MediaError(
      'TOO_LARGE',
      `the file has ${stat.size} bytes; the limit (MAX_UPLOAD_BYTES) is ${deps.config.maxFileBytes}`,
    );
  }

  const sniffed = await fileTypeFromFile(file);
  const detected = classify(sniffed) ?? (sniffed ? null : byHead(await readHead(file, 1024)));
  if (!detected) {
    const what = sniffed ? ` (it is ${sniffed.mime})` : describeHead(await readHead(file, 512));
    throw new MediaError('UNSUPPORTED_TYPE', `the content is not a supported image, video, audio or PDF file${what}`);
  }

  const sha256 = await sha256File(file, ctx.signal);
  const expected = input.file.sha256?.toLowerCase();
  if (expected && expected !== sha256) {
    throw new MediaError('CHECKSUM_MISMATCH', `sha256 is ${sha256}, the producer said ${expected}`);
  }

  // What the checks settle: the kind (a video container holding sound only is audio) and, for audio and video, the
  // format ffmpeg reads it as (an elementary stream sniffed as a program stream); every later step opens it so.
  let settled = detected;
  const fileInfo = (fileType: FileType) => ({
    name: input.file.name ?? path.basename(file),
    size: stat.size,
    mime: fileType === 'audio' && settled.kind === 'video' ? audioMime(settled) : settled.mime,
    ext: settled.ext,
    sha256,
  });
  let fileType: FileType;
  try {
    const found = await checkDecodable(detected, input, deps, ctx);
    fileType = found.kind;
    if (found.ext !== detected.ext)
      settled = { ...detected, ext: found.ext, mime: FALLBACK_MIME[found.ext] ?? detected.mime };
  } catch (err) {
    // Refused, but identified: the failed job still says what the file is (an encrypted PDF is a PDF).
    if (!(err instanceof MediaError) || err.interrupted) throw err;
    const known: FileType = detected.kind;
    throw new MediaError(err.code, err.message, {
      cause: err,
      retryable: err.retryable,
      learnt: { fileType: known, fileInfo: fileInfo(known) },
    });
  }
  return { status: 'succeeded', fileType, fileInfo: fileInfo(fileType) };
};

/** A format file-type does not know, from the first bytes: a damaged Matroska header, a raw H.264/HEVC stream. */
function byHead(head: Buffer): Detected | null {
  return byMatroskaDocType(head) ?? byElementaryStream(head);
}

async function checkDecodable(
  detected: Detected,
  input: StepInput,
  deps: Deps,
  ctx: StepContext,
): Promise<{ kind: FileType; ext: string }> {
  const file = input.file.path;
  const ext = detected.ext;
  switch (detected.kind) {
    case 'image':
      if (!(isHeifExt(ext) && (await decodeHevcHeif(file, input.jobId, deps))))
        await checkImage(file, deps.config.maxImagePixels);
      return { kind: 'image', ext };
    case 'pdf':
      await withPdf(file, async (pdf) => {
        const info = await pdf.getInfo();
        if (info.total < 1) throw new MediaError('CORRUPT_FILE', 'the PDF has no pages');
        // Read from the page tree's count, before any page: a few bytes can claim a million pages.
        const max = deps.config.maxPdfPages;
        if (info.total > max)
          throw new MediaError('TOO_LARGE', `the PDF has ${info.total} pages; the limit (MAX_PDF_PAGES) is ${max}`);
      });
      return { kind: 'pdf', ext };
    case 'video':
    case 'audio':
      return checkAudioVideo(file, detected.ext, deps, ctx);
  }
}

/**
 * A HEIF photo compressed with HEVC, which libvips cannot decode: its size checked from the header, then decoded
 * once (libheif in WebAssembly) into the copy every later image step reads (lib/heif.ts). False when the HEIF file
 * holds another compression (AV1), which libvips decodes as usual.
 */
async function decodeHevcHeif(file: string, jobId: string, deps: Deps): Promise<boolean> {
  const header = await readHeifHeader(file);
  if (header.compression !== 'hevc') return false;
  const { size } = await fs.stat(file);
  checkHeifLimits(header, size, { maxPixels: deps.config.maxImagePixels, memoryMb: deps.config.stepMemoryMb });
  const decoded = await decodeHeif(file, header);
  const copy = await encodeDecoded(decoded, header.hasAlpha);
  await deps.artifacts.write(jobId, copy.name, copy.data);
  return true;
}

async function checkImage(file: string, maxPixels: number): Promise<void> {
  let meta;
  try {
    // Header only, no pixel limit yet: a pixel bomb must be TOO_LARGE, not a decoder error.
    meta = await openImage(file, 0).metadata();
  } catch (err) {
    throw imageError(err);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (!meta.width || !meta.height) throw new MediaError('CORRUPT_FILE', 'the image has no dimensions');
  if (pixels > maxPixels) {
    throw new MediaError(
      'TOO_LARGE',
      `the image is ${meta.width}x${meta.height} (${pixels} pixels); the limit (MAX_IMAGE_PIXELS) is ${maxPixels}`,
    );
  }
  try {
    if (meta.format === 'jpeg' && (await endsWith(file, JPEG_EOI))) {
      // Bounded, as for video (its first frame): a JPEG whose data ends with its end-of-image marker is not
      // truncated; its first rows are decoded for real. Damage further inside is found by the thumbnails' decode,
      // which fails the job CORRUPT_FILE too. The full check below was a second decode of every photo (up to 60 ms
      // of a 12-megapixel one; docs/benchmarks.md, orchestration overhead).
      await openImage(file, maxPixels)
        .extract({ left: 0, top: 0, width: meta.width, height: Math.min(meta.height, 64) })
        .raw()
        .toBuffer();
      return;
    }
    // A full decode of all the data, at a reduced size (JPEG shrink-on-load keeps this cheap): catches truncation.
    await openImage(file, maxPixels).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
  } catch (err) {
    throw imageError(err);
  }
}

/** JPEG's end-of-image marker. */
const JPEG_EOI = Buffer.from([0xff, 0xd9]);

/** True when the file's last bytes are `tail`. */
async function endsWith(file: string, tail: Buffer): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < tail.length) return false;
    const end = Buffer.alloc(tail.length);
    await fh.read(end, 0, tail.length, size - tail.length);
    return end.equals(tail);
  } finally {
    await fh.close();
  }
}

/**
 * Probes the file as the format it was sniffed as, then as each of that format's fallbacks, until one finds a sound
 * or picture stream; then decodes the start of it. The kind it holds, and the format that read it.
 */
async function checkAudioVideo(
  file: string,
  sniffed: string,
  deps: Deps,
  ctx: StepContext,
): Promise<{ kind: FileType; ext: string }> {
  let found: { ext: string; video: boolean } | null = null;
  let firstError: Error | null = null;
  for (const ext of formatsToTry(sniffed)) {
    try {
      const probe = await probeMedia(deps.tools.ffprobe, file, {
        timeoutMs: PROBE_TIMEOUT_MS,
        signal: ctx.signal,
        ext,
      });
      const video = videoStreams(probe).length > 0;
      if (video || audioStreams(probe).length > 0) {
        found = { ext, video };
        break;
      }
    } catch (err) {
      if (!(err instanceof MediaError) || err.interrupted) throw err;
      firstError ??= err;
    }
  }
  if (!found) throw firstError ?? new MediaError('CORRUPT_FILE', 'the container holds no audio or video stream');
  const { ext } = found;
  const kind: FileType = found.video ? 'video' : 'audio';
  // Decode the first frame (or second of sound) for real: a readable header over broken data is still corrupt.
  const args = ['-v', 'error', '-xerror', '-nostdin', ...mediaInput(file, ext, 'ffmpeg')];
  args.push(...(kind === 'video' ? ['-map', '0:V:0', '-frames:v', '1'] : ['-map', '0:a:0', '-t', '1']));
  args.push('-f', 'null', '-');
  try {
    await runTool(deps.tools.ffmpeg, args, { timeoutMs: PROBE_TIMEOUT_MS, signal: ctx.signal });
  } catch (err) {
    if (err instanceof ToolError) {
      throw new MediaError(
        'CORRUPT_FILE',
        `the ${kind} stream cannot be decoded: ${lastLine(err.stderr) || err.message}`,
      );
    }
    throw err;
  }
  return { kind, ext };
}

function audioMime(detected: Detected): string {
  return detected.ext === 'webm' ? 'audio/webm' : detected.ext === 'mp4' ? 'audio/mp4' : detected.mime;
}

/** A hint for humans: what the bytes look like when they are not media (text, HTML, an archive…). */
function describeHead(head: Buffer): string {
  const sample = head;
  const printable = sample.filter((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127)).length;
  if (sample.length > 0 && printable / sample.length > 0.95) return ' (it looks like text)';
  return '';
}
