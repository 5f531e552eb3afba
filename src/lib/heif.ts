/**
 * HEIF stills compressed with HEVC (every iPhone photo since 2017, many Android ones), which this build of libvips
 * cannot decode: the header is read here (ISOBMFF boxes), so that the size is checked before any pixel is decoded,
 * and the picture is decoded by libheif compiled to WebAssembly (the `libheif-js` build that `heic-decode` ships).
 *
 * Orientation: libheif applies the HEIF transforms (`irot`, `imir`, `clap`) as it decodes, and the HEIF standard
 * makes them the orientation; an EXIF Orientation tag in a HEIF file only repeats them (an iPhone writes both), so it
 * is never applied again.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { MediaError } from './errors.js';
import { THUMBNAIL_MAX_ASPECT } from './instructions.js';

const MB = 2 ** 20;

/** What the boxes say about the picture a viewer shows (the primary item), before any pixel is decoded. */
export interface HeifHeader {
  /** `hevc` goes through libheif here; `av1` (AVIF in a HEIF box) and anything else stay with libvips. */
  compression: 'hevc' | 'av1' | 'other';
  primaryId: number;
  /** The stored size (`ispe`), before rotation. */
  width: number;
  height: number;
  /** Degrees counter-clockwise (`irot`), and whether a mirror (`imir`) applies: libheif applies both. */
  rotation: number;
  mirrored: boolean;
  hasAlpha: boolean;
  /** The file also holds an image sequence track (a burst, an animation, a Live Photo kept inside). */
  hasSequence: boolean;
}

interface Box {
  type: string;
  /** Where its payload starts and where the box ends, in the buffer it was read from. */
  start: number;
  end: number;
}

/** The meta box of a still image is a few KB (a 48 MP iPhone grid of 512 px tiles: about 20 KB). */
const MAX_META_BYTES = 16 * MB;

const corrupt = (why: string): MediaError => new MediaError('CORRUPT_FILE', `the HEIF file is damaged: ${why}`);

/** The boxes inside `buf[start, end)`, refusing any that claims to run past its parent. */
function boxes(buf: Buffer, start: number, end: number): Box[] {
  const out: Box[] = [];
  let at = start;
  while (at + 8 <= end) {
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) throw corrupt(`the box '${type}' at byte ${at} is cut short`);
      size = Number(buf.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) size = end - at;
    if (size < header || at + size > end)
      throw corrupt(`the box '${type}' at byte ${at} claims ${size} bytes; only ${end - at} are there`);
    out.push({ type, start: at + header, end: at + size });
    at += size;
  }
  return out;
}

/** A reader over one box's payload that refuses to read past it. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    public at: number,
    private readonly end: number,
    private readonly what: string,
  ) {}

  private need(n: number): number {
    if (this.at + n > this.end) throw corrupt(`the '${this.what}' box is shorter than its fields`);
    const at = this.at;
    this.at += n;
    return at;
  }

  u8 = (): number => this.buf.readUInt8(this.need(1));
  u16 = (): number => this.buf.readUInt16BE(this.need(2));
  u32 = (): number => this.buf.readUInt32BE(this.need(4));
  /** An unsigned integer of 0, 4 or 8 bytes (iloc's field sizes). */
  uint(bytes: number): number {
    if (bytes === 0) return 0;
    if (bytes === 4) return this.u32();
    if (bytes === 8) return Number(this.buf.readBigUInt64BE(this.need(8)));
    throw corrupt(`the '${this.what}' box has a field of ${bytes} bytes`);
  }
  fourcc = (): string => this.buf.toString('latin1', this.need(4), this.at);
  /** A FullBox's version (its flags are returned too). */
  full(): { version: number; flags: number } {
    const v = this.u32();
    return { version: v >>> 24, flags: v & 0xffffff };
  }
}

interface Extent {
  offset: number;
  length: number;
}

/**
 * Reads the boxes of a HEIF file: `ftyp`, then the `meta` box's primary item, its type, its properties (`ispe`,
 * `irot`, `imir`) and where its data lies. Reads the top-level box headers and the meta box only, never the pixels.
 * A file that is no still image at all (a sequence without a primary item) is UNSUPPORTED_TYPE, saying so.
 */
export async function readHeifHeader(file: string): Promise<HeifHeader> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const top: { type: string; offset: number; size: number }[] = [];
    let at = 0;
    const head = Buffer.alloc(16);
    while (at + 8 <= size) {
      const { bytesRead } = await fh.read(head, 0, 16, at);
      let boxSize = head.readUInt32BE(0);
      const type = head.toString('latin1', 4, 8);
      if (boxSize === 1 && bytesRead >= 16) boxSize = Number(head.readBigUInt64BE(8));
      else if (boxSize === 0) boxSize = size - at;
      if (boxSize < 8) throw corrupt(`the top-level box '${type}' at byte ${at} has a size of ${boxSize}`);
      top.push({ type, offset: at, size: boxSize });
      if (at + boxSize > size && type !== 'mdat')
        throw corrupt(`the file is cut short: the '${type}' box ends at byte ${at + boxSize}, the file at ${size}`);
      at += boxSize;
    }
    if (top[0]?.type !== 'ftyp') throw corrupt('it does not start with an ftyp box');
    const metaBox = top.find((b) => b.type === 'meta');
    const hasSequence = top.some((b) => b.type === 'moov');
    if (!metaBox) {
      if (hasSequence) throw sequenceOnly();
      throw corrupt('it has no meta box, so no image');
    }
    if (metaBox.size > MAX_META_BYTES) throw corrupt(`its meta box claims ${metaBox.size} bytes`);
    const meta = Buffer.alloc(metaBox.size);
    await fh.read(meta, 0, metaBox.size, metaBox.offset);
    const header = parseMeta(meta, hasSequence);
    for (const extent of header.extents) {
      const end = extent.offset + extent.length;
      if (end > size)
        throw corrupt(`the file is cut short: the image data runs to byte ${end}, the file ends at byte ${size}`);
    }
    const { extents: _, ...rest } = header;
    return rest;
  } finally {
    await fh.close();
  }
}

const sequenceOnly = (): MediaError =>
  new MediaError(
    'UNSUPPORTED_TYPE',
    'this HEIF file is an image sequence (a burst or an animation) with no primary still image; ' +
      'only HEIF stills, or sequences that carry one, can be read',
  );

/** The meta box (`buf` is the whole box): the primary item and everything needed to check it before decoding. */
function parseMeta(buf: Buffer, hasSequence: boolean): HeifHeader & { extents: Extent[] } {
  const [metaBox] = boxes(buf, 0, buf.length);
  if (!metaBox) throw corrupt('its meta box is empty');
  // meta is a FullBox: its children start after the version and flags.
  const children = boxes(buf, metaBox.start + 4, metaBox.end);
  const find = (type: string): Box | undefined => children.find((b) => b.type === type);

  const pitm = find('pitm');
  if (!pitm) {
    if (hasSequence) throw sequenceOnly();
    throw corrupt('it names no primary image (no pitm box)');
  }
  const pr = new Reader(buf, pitm.start, pitm.end, 'pitm');
  const primaryId = pr.full().version === 0 ? pr.u16() : pr.u32();

  const types = itemTypes(buf, find('iinf'));
  const primaryType = types.get(primaryId);
  if (!primaryType) throw corrupt(`the primary image (item ${primaryId}) is not in the item list`);

  const refs = itemReferences(buf, find('iref'));
  const tiles = primaryType === 'grid' ? (refs.get(`dimg:${primaryId}`) ?? []) : [];
  if (primaryType === 'grid' && tiles.length === 0) throw corrupt('its grid image has no tiles');
  const coded = primaryType === 'grid' ? types.get(tiles[0]!) : primaryType;
  const compression = coded === 'hvc1' ? 'hevc' : coded === 'av01' ? 'av1' : 'other';

  const props = itemProperties(buf, find('iprp'));
  const own = props.get(primaryId) ?? [];
  const ispe = own.find((p) => p.type === 'ispe');
  if (!ispe) throw corrupt('the primary image has no size (no ispe property)');
  const sr = new Reader(buf, ispe.start, ispe.end, 'ispe');
  sr.full();
  const width = sr.u32();
  const height = sr.u32();
  if (width === 0 || height === 0) throw corrupt(`the primary image claims a size of ${width}x${height}`);
  const irot = own.find((p) => p.type === 'irot');
  const rotation = irot && irot.end > irot.start ? (buf.readUInt8(irot.start) & 3) * 90 : 0;
  const alpha = [...(refs.get('auxl:to') ?? [])].some((id) => (refs.get(`auxl:${id}`) ?? []).includes(primaryId));

  const locations = itemLocations(buf, find('iloc'));
  const extents = [primaryId, ...tiles].flatMap((id) => locations.get(id) ?? []);
  return {
    compression,
    primaryId,
    width,
    height,
    rotation,
    mirrored: own.some((p) => p.type === 'imir'),
    hasAlpha: alpha,
    hasSequence,
    extents,
  };
}

function itemTypes(buf: Buffer, iinf: Box | undefined): Map<number, string> {
  const types = new Map<number, string>();
  if (!iinf) throw corrupt('it has no item list (no iinf box)');
  const r = new Reader(buf, iinf.start, iinf.end, 'iinf');
  const count = r.full().version === 0 ? r.u16() : r.u32();
  const entries = boxes(buf, r.at, iinf.end).filter((b) => b.type === 'infe');
  for (const infe of entries.slice(0, count)) {
    const e = new Reader(buf, infe.start, infe.end, 'infe');
    const { version } = e.full();
    if (version < 2) continue;
    const id = version === 2 ? e.u16() : e.u32();
    e.u16();
    types.set(id, e.fourcc());
  }
  return types;
}

/** `type:from` → the items it points to; `type:to` → every item that has a reference of that type. */
function itemReferences(buf: Buffer, iref: Box | undefined): Map<string, number[]> {
  const refs = new Map<string, number[]>();
  if (!iref) return refs;
  const r = new Reader(buf, iref.start, iref.end, 'iref');
  const wide = r.full().version !== 0;
  for (const ref of boxes(buf, r.at, iref.end)) {
    const e = new Reader(buf, ref.start, ref.end, ref.type);
    const from = wide ? e.u32() : e.u16();
    const n = e.u16();
    const to = Array.from({ length: n }, () => (wide ? e.u32() : e.u16()));
    refs.set(`${ref.type}:${from}`, [...(refs.get(`${ref.type}:${from}`) ?? []), ...to]);
    refs.set(`${ref.type}:to`, [...(refs.get(`${ref.type}:to`) ?? []), from]);
  }
  return refs;
}

/** Each item's property boxes, from ipco (the boxes, numbered from 1) and ipma (which item has which). */
function itemProperties(buf: Buffer, iprp: Box | undefined): Map<number, Box[]> {
  const props = new Map<number, Box[]>();
  if (!iprp) throw corrupt('it has no item properties (no iprp box)');
  const inner = boxes(buf, iprp.start, iprp.end);
  const ipco = inner.find((b) => b.type === 'ipco');
  if (!ipco) throw corrupt('it has no item properties (no ipco box)');
  const list = boxes(buf, ipco.start, ipco.end);
  for (const ipma of inner.filter((b) => b.type === 'ipma')) {
    const r = new Reader(buf, ipma.start, ipma.end, 'ipma');
    const { version, flags } = r.full();
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      const id = version < 1 ? r.u16() : r.u32();
      const n = r.u8();
      const own = props.get(id) ?? [];
      for (let j = 0; j < n; j++) {
        const index = flags & 1 ? r.u16() & 0x7fff : r.u8() & 0x7f;
        const box = index > 0 ? list[index - 1] : undefined;
        if (box) own.push(box);
      }
      props.set(id, own);
    }
  }
  return props;
}

/** Where each item's data lies in the file (construction method 0); items kept elsewhere are left out. */
function itemLocations(buf: Buffer, iloc: Box | undefined): Map<number, Extent[]> {
  const out = new Map<number, Extent[]>();
  if (!iloc) throw corrupt('it does not say where its images lie (no iloc box)');
  const r = new Reader(buf, iloc.start, iloc.end, 'iloc');
  const { version } = r.full();
  const sizes = r.u16();
  const offsetSize = sizes >> 12;
  const lengthSize = (sizes >> 8) & 15;
  const baseSize = (sizes >> 4) & 15;
  const indexSize = version === 1 || version === 2 ? sizes & 15 : 0;
  const count = version < 2 ? r.u16() : r.u32();
  for (let i = 0; i < count; i++) {
    const id = version < 2 ? r.u16() : r.u32();
    const method = version === 1 || version === 2 ? r.u16() & 15 : 0;
    r.u16(); // data_reference_index
    const base = r.uint(baseSize);
    const n = r.u16();
    const extents: Extent[] = [];
    for (let j = 0; j < n; j++) {
      r.uint(indexSize);
      const offset = r.uint(offsetSize);
      const length = r.uint(lengthSize);
      extents.push({ offset: base + offset, length });
    }
    if (method === 0) out.set(id, extents);
  }
  return out;
}

/**
 * Memory a decode and its copy hold per pixel: inside the module the 4:2:0 planes (up to 16 bits a sample for HDR)
 * and libheif's RGBA output, the RGBA copied out to JavaScript, then libvips encoding the copy. Measured on
 * 2026-12-03 (bench/heic.ts): the first decode of a 12.2 MP iPhone photo grew the process by 158 MB (the module's
 * memory reached 86 MB; a 16 MP 10-bit photo, 132 MB), decode and copy together by 302 MB; counted as 20 bytes a
 * pixel and a base.
 */
const HEIF_BYTES_PER_PIXEL = 20;
const HEIF_BASE_BYTES = 48 * MB;

/** The memory decoding `header` holds at its peak, in bytes: the file twice (read, and inside the module) and pixels. */
export function heifDecodeBytes(header: HeifHeader, fileBytes: number): number {
  return header.width * header.height * HEIF_BYTES_PER_PIXEL + 2 * fileBytes + HEIF_BASE_BYTES;
}

/** Refuses a picture over the pixel limit or the step's memory, from its header: nothing has been decoded yet. */
export function checkHeifLimits(
  header: HeifHeader,
  fileBytes: number,
  limits: { maxPixels: number; memoryMb: number },
): void {
  const pixels = header.width * header.height;
  if (pixels > limits.maxPixels) {
    throw new MediaError(
      'TOO_LARGE',
      `the image is ${header.width}x${header.height} (${pixels} pixels); the limit (MAX_IMAGE_PIXELS) is ${limits.maxPixels}`,
    );
  }
  const need = heifDecodeBytes(header, fileBytes);
  if (need > limits.memoryMb * MB) {
    throw new MediaError(
      'RESOURCE_LIMIT',
      `decoding this ${header.width}x${header.height} HEIF picture needs about ${Math.ceil(need / MB)} MB; ` +
        `a step may hold STEP_MEMORY_MB=${limits.memoryMb} MB`,
    );
  }
}

/** The part of libheif's JavaScript binding used here (libheif-js, the build heic-decode ships). */
interface Libheif {
  heif_context_alloc(): number;
  heif_context_free(ctx: number): void;
  heif_context_read_from_memory(ctx: number, data: Uint8Array): HeifError;
  heif_js_context_get_image_handle(ctx: number, id: number): HeifHandle | HeifError | null;
  heif_image_handle_release(handle: HeifHandle): void;
  heif_js_decode_image2(
    handle: HeifHandle,
    colorspace: number,
    chroma: number,
  ): Promise<HeifDecoded | HeifError | null>;
  heif_image_release(image: number): void;
  heif_error_code: { heif_error_Ok: unknown };
  heif_colorspace: { heif_colorspace_RGB: number };
  heif_chroma: { heif_chroma_interleaved_RGBA: number };
  heif_channel: { heif_channel_interleaved: number };
}

/** An image handle: an opaque value of the binding. */
type HeifHandle = object | number;

/** An embind enum value (an object) and libheif's message. */
interface HeifError {
  code: unknown;
  message?: string;
}

const isHeifError = (v: HeifHandle | HeifError): v is HeifError =>
  typeof v === 'object' && 'code' in v && Boolean(v.code);

interface HeifDecoded {
  image: number;
  channels: { id: number; width: number; height: number; stride: number; data: Uint8Array }[];
}

const require = createRequire(import.meta.url);

/**
 * The thread's libheif module, built on first use. One module for every decode: its WebAssembly memory stays at the
 * largest picture's need (which checkHeifLimits bounds) and is reused. A fresh module per decode gave its memory
 * back only when the garbage collector got to it: six decodes of a 12 MP photo in a row grew the process by 314 MB
 * more than the first (2026-12-03, bench/heic.ts).
 */
let libheif: Libheif | null = null;
function loadLibheif(): Libheif {
  // heic-decode's own entry point (`libheif-js/wasm-bundle`) builds its module when it loads; the factory is the same
  // build, loaded on demand.
  // Emscripten prints to stdout and stderr by default; stdout carries the CLI's results, and errors come back here.
  const factory = require('libheif-js/libheif-wasm/libheif-bundle.js') as (opts: object) => Libheif;
  libheif ??= factory({ print: () => undefined, printErr: () => undefined });
  return libheif;
}

export interface DecodedPicture {
  /** RGBA, 8 bits a sample, upright (HEIF transforms applied). */
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Decodes the primary image of a HEVC HEIF file whose header has been read and checked (readHeifHeader,
 * checkHeifLimits): upright, RGBA. libheif's refusal (damaged data, a missing tile) is CORRUPT_FILE with its message.
 */
export async function decodeHeif(file: string, header: HeifHeader): Promise<DecodedPicture> {
  const bytes = await fs.readFile(file);
  try {
    return await decodeWith(loadLibheif(), bytes, header);
  } catch (err) {
    if (err instanceof MediaError) throw err;
    // A trap or an abort inside the module (out of memory, a decoder bug on crafted data) leaves it unusable: the
    // next decode builds a new one.
    libheif = null;
    const message = err instanceof Error ? err.message : String(err);
    if (/out of memory|enlarge memory|grow/i.test(message)) {
      throw new MediaError('RESOURCE_LIMIT', `libheif ran out of memory decoding this HEIF picture: ${message}`);
    }
    throw corrupt(`libheif failed on its data: ${message.slice(0, 200)}`);
  }
}

async function decodeWith(lib: Libheif, bytes: Buffer, header: HeifHeader): Promise<DecodedPicture> {
  const ctx = lib.heif_context_alloc();
  if (!ctx) throw new Error('libheif could not allocate a context');
  let handle: HeifHandle | null = null;
  try {
    const read = lib.heif_context_read_from_memory(ctx, bytes);
    if (read.code !== lib.heif_error_code.heif_error_Ok) throw corrupt(read.message ?? 'libheif cannot read it');
    const got = lib.heif_js_context_get_image_handle(ctx, header.primaryId);
    if (!got) throw corrupt('libheif cannot open the primary image');
    if (isHeifError(got)) throw corrupt(got.message ?? 'libheif cannot open the primary image');
    handle = got;
    const decoded = await lib.heif_js_decode_image2(
      handle,
      lib.heif_colorspace.heif_colorspace_RGB,
      lib.heif_chroma.heif_chroma_interleaved_RGBA,
    );
    if (!decoded || !('channels' in decoded)) {
      const why = decoded?.message ?? 'libheif could not decode the image data';
      throw corrupt(why);
    }
    try {
      const plane = decoded.channels.find((c) => c.id === lib.heif_channel.heif_channel_interleaved);
      if (!plane) throw corrupt('libheif returned no pixels');
      const { width, height, stride } = plane;
      const row = width * 4;
      // The plane is a view of the module's memory, which the next decode reuses: copied out, row by row when padded.
      if (stride === row) return { data: Buffer.from(plane.data.subarray(0, row * height)), width, height };
      const data = Buffer.allocUnsafe(row * height);
      for (let y = 0; y < height; y++) data.set(plane.data.subarray(y * stride, y * stride + row), y * row);
      return { data, width, height };
    } finally {
      lib.heif_image_release(decoded.image);
    }
  } finally {
    if (handle !== null) lib.heif_image_handle_release(handle);
    lib.heif_context_free(ctx);
  }
}

/**
 * The decoded copy validate keeps of a HEVC HEIF photo, so that the picture is decoded once per job: upright, at
 * most DECODED_MAX_SIDE on its longer side, JPEG at quality 95 without chroma subsampling (PNG when the photo has
 * transparency). Thumbnails, the placeholder and the analysis read it; a browser that cannot show HEIC can.
 */
export const DECODED_NAMES = { opaque: 'decoded.jpg', alpha: 'decoded.png' } as const;
/** The largest thumbnail width a job can ask for (THUMBNAIL_WIDTHS and instructions are bounded by it). */
export const DECODED_MAX_SIDE = 4096;

/** The decoded copy's name and bytes (see DECODED_NAMES). */
export async function encodeDecoded(
  picture: DecodedPicture,
  hasAlpha: boolean,
): Promise<{ name: string; data: Buffer }> {
  const { width, height } = picture;
  const [short, long] = [DECODED_MAX_SIDE, DECODED_MAX_SIDE * THUMBNAIL_MAX_ASPECT];
  const pipeline = sharp(picture.data, { raw: { width, height, channels: 4 } }).resize({
    width: width >= height ? long : short,
    height: width >= height ? short : long,
    fit: 'inside',
    withoutEnlargement: true,
  });
  if (hasAlpha) return { name: DECODED_NAMES.alpha, data: await pipeline.png({ compressionLevel: 1 }).toBuffer() };
  const data = await pipeline.removeAlpha().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
  return { name: DECODED_NAMES.opaque, data };
}

/** Whether a file of this sniffed extension is in a HEIF box (HEIC, HEIF; AVIF is sniffed as `avif`). */
export const isHeifExt = (ext: string | undefined): boolean => ext === 'heic' || ext === 'heif';

/**
 * What the image steps decode: the original file, or for a HEVC HEIF photo the copy validate decoded (see
 * DECODED_NAMES). Without that copy (a job validated before HEIF was decoded here) the photo is decoded again, and
 * the copy's bytes are returned instead of a path.
 */
export async function pictureSource(
  file: string,
  ext: string | undefined,
  decodedCopy: (name: string) => Promise<string>,
  limits: { maxPixels: number; memoryMb: number },
): Promise<string | Buffer> {
  if (!isHeifExt(ext)) return file;
  for (const name of Object.values(DECODED_NAMES)) {
    const copy = await decodedCopy(name);
    if (
      await fs.access(copy).then(
        () => true,
        () => false,
      )
    )
      return copy;
  }
  const header = await readHeifHeader(file);
  if (header.compression !== 'hevc') return file;
  const { size } = await fs.stat(file);
  checkHeifLimits(header, size, limits);
  return (await encodeDecoded(await decodeHeif(file, header), header.hasAlpha)).data;
}
