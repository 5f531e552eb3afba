/**
 * Where the header fields of a file are: lengths, sizes, counts and dimensions that decoders trust. Cheap, partial
 * walkers per container (JPEG segments, PNG chunks, ISO boxes, RIFF chunks, EBML elements, GIF blocks, the first
 * TIFF IFD, PDF numbers): enough to find fields worth setting to 0 or 0xFFFFFFFF, not parsers. Each walk stops at
 * the first thing it does not understand and never reads past the buffer.
 */

export type Field =
  | {
      kind: 'uint';
      label: string;
      offset: number;
      width: 1 | 2 | 3 | 4 | 8;
      littleEndian: boolean;
      /** A PNG chunk's CRC over [start, end) at `at`: recomputed after the change, half the time, to get past it. */
      crc?: { start: number; end: number; at: number };
    }
  /** An EBML variable-length size: its width is its first byte's leading zeros + 1. */
  | { kind: 'vint'; label: string; offset: number; width: number }
  /** Decimal digits in a PDF (lengths, offsets, counts). */
  | { kind: 'ascii'; label: string; offset: number; width: number };

/** Most fields one walk collects: a movie with thousands of boxes does not need them all listed. */
const MAX_FIELDS = 5000;

export function findFields(data: Buffer): Field[] {
  const walk = walkerFor(data);
  if (!walk) return [];
  const out: Field[] = [];
  walk(data, out);
  return out.slice(0, MAX_FIELDS);
}

type Walker = (data: Buffer, out: Field[]) => void;

function walkerFor(d: Buffer): Walker | null {
  const ascii = (start: number, end: number): string => d.toString('latin1', start, Math.min(end, d.length));
  if (d.length >= 3 && d[0] === 0xff && d[1] === 0xd8 && d[2] === 0xff) return walkJpeg;
  if (ascii(1, 4) === 'PNG') return walkPng;
  if (ascii(4, 8) === 'ftyp') return walkIso;
  if (ascii(0, 4) === 'RIFF') return walkRiff;
  if (d.length >= 4 && d.readUInt32BE(0) === 0x1a45dfa3) return walkEbml;
  if (ascii(0, 4) === 'GIF8') return walkGif;
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return walkTiff;
  if (ascii(0, 1024).includes('%PDF-')) return walkPdf;
  if (ascii(0, 3) === 'ID3') return walkId3;
  return null;
}

type UintField = Extract<Field, { kind: 'uint' }>;

const u = (label: string, offset: number, width: 1 | 2 | 3 | 4 | 8, littleEndian = false): UintField => ({
  kind: 'uint',
  label,
  offset,
  width,
  littleEndian,
});

/** Keeps only fields that lie wholly inside the buffer. */
function push(out: Field[], data: Buffer, ...fields: Field[]): void {
  for (const f of fields) if (f.offset >= 0 && f.offset + f.width <= data.length) out.push(f);
}

function walkJpeg(d: Buffer, out: Field[]): void {
  let i = 2;
  for (let n = 0; n < 200 && i + 4 <= d.length; n++) {
    if (d[i] !== 0xff) return;
    const marker = d[i + 1]!;
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    if (marker === 0xd9) return;
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const name = `jpeg-${marker.toString(16)}`;
    push(out, d, u(`${name}-length`, i + 2, 2));
    const isSof = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isSof) {
      push(out, d, u(`${name}-precision`, i + 4, 1), u(`${name}-height`, i + 5, 2), u(`${name}-width`, i + 7, 2));
      push(out, d, u(`${name}-components`, i + 9, 1));
    }
    // Entropy-coded data follows the scan header: no more segments to find by length.
    if (marker === 0xda) return;
    i += 2 + d.readUInt16BE(i + 2);
  }
}

function walkPng(d: Buffer, out: Field[]): void {
  let i = 8;
  for (let n = 0; n < 500 && i + 8 <= d.length; n++) {
    const length = d.readUInt32BE(i);
    const type = d.toString('latin1', i + 4, i + 8);
    const end = i + 8 + length;
    const crc = end + 4 <= d.length ? { start: i + 4, end, at: end } : undefined;
    const inChunk = (label: string, offset: number, width: 1 | 2 | 4): Field => ({ ...u(label, offset, width), crc });
    push(out, d, u(`png-${type}-length`, i, 4));
    if (type === 'IHDR') {
      push(out, d, inChunk('png-IHDR-width', i + 8, 4), inChunk('png-IHDR-height', i + 12, 4));
      push(out, d, inChunk('png-IHDR-depth', i + 16, 1), inChunk('png-IHDR-colour', i + 17, 1));
      push(out, d, inChunk('png-IHDR-interlace', i + 20, 1));
    } else if (type === 'acTL') {
      push(out, d, inChunk('png-acTL-frames', i + 8, 4));
    } else if (type === 'fcTL') {
      push(out, d, inChunk('png-fcTL-width', i + 12, 4), inChunk('png-fcTL-height', i + 16, 4));
    }
    if (type === 'IEND') return;
    i = end + 4;
  }
}

/** ISO base media boxes (MP4, MOV, 3GP, AVIF, HEIC) that hold other boxes; `meta` is a full box (4 more bytes). */
const ISO_CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'dinf', 'edts', 'udta', 'mvex', 'moof']);
const ISO_CONTAINERS_FULL = new Set(['meta']);
const ISO_COUNTED = new Set(['stsz', 'stco', 'co64', 'stss', 'stts', 'stsc', 'ctts', 'elst', 'stsd', 'dref']);

function walkIso(d: Buffer, out: Field[]): void {
  let boxes = 0;
  const walk = (start: number, end: number, depth: number): void => {
    let i = start;
    while (i + 8 <= end && boxes++ < 2000) {
      const size = d.readUInt32BE(i);
      const type = d.toString('latin1', i + 4, i + 8);
      push(out, d, u(`iso-${type}-size`, i, 4));
      let header = 8;
      let length = size;
      if (size === 1 && i + 16 <= end) {
        push(out, d, u(`iso-${type}-largesize`, i + 8, 8));
        header = 16;
        length = Number(d.readBigUInt64BE(i + 8));
      } else if (size === 0) length = end - i;
      if (length < header) return;
      if (ISO_COUNTED.has(type)) {
        // version/flags, then the entry count (stsz: the sample size, then the count)
        push(out, d, u(`iso-${type}-count`, i + header + 4, 4));
        if (type === 'stsz') push(out, d, u('iso-stsz-samples', i + header + 8, 4));
      } else if (type === 'mvhd' || type === 'mdhd') {
        push(out, d, u(`iso-${type}-timescale`, i + header + 12, 4), u(`iso-${type}-duration`, i + header + 16, 4));
      } else if (type === 'ispe') {
        push(out, d, u('iso-ispe-width', i + header + 4, 4), u('iso-ispe-height', i + header + 8, 4));
      } else if (type === 'iloc' || type === 'iinf' || type === 'pitm') {
        push(out, d, u(`iso-${type}-field`, i + header + 4, 2));
      }
      if (depth < 8) {
        if (ISO_CONTAINERS.has(type)) walk(i + header, Math.min(end, i + length), depth + 1);
        else if (ISO_CONTAINERS_FULL.has(type)) walk(i + header + 4, Math.min(end, i + length), depth + 1);
        else if (type === 'iprp' || type === 'ipco') walk(i + header, Math.min(end, i + length), depth + 1);
      }
      i += length;
    }
  };
  walk(0, d.length, 0);
}

function walkRiff(d: Buffer, out: Field[]): void {
  push(out, d, u('riff-size', 4, 4, true));
  let chunks = 0;
  const walk = (start: number, end: number, depth: number): void => {
    let i = start;
    while (i + 8 <= end && chunks++ < 1000) {
      const id = d.toString('latin1', i, i + 4);
      const size = d.readUInt32LE(i + 4);
      push(out, d, u(`riff-${id}-size`, i + 4, 4, true));
      const body = i + 8;
      if (id === 'fmt ') {
        push(out, d, u('wav-format', body, 2, true), u('wav-channels', body + 2, 2, true));
        push(out, d, u('wav-rate', body + 4, 4, true), u('wav-byterate', body + 8, 4, true));
        push(out, d, u('wav-align', body + 12, 2, true), u('wav-bits', body + 14, 2, true));
      } else if (id === 'avih') {
        push(out, d, u('avi-usecperframe', body, 4, true), u('avi-frames', body + 16, 4, true));
        push(out, d, u('avi-streams', body + 24, 4, true), u('avi-buffer', body + 28, 4, true));
        push(out, d, u('avi-width', body + 32, 4, true), u('avi-height', body + 36, 4, true));
      } else if (id === 'strh') {
        push(out, d, u('avi-strh-scale', body + 20, 4, true), u('avi-strh-rate', body + 24, 4, true));
        push(out, d, u('avi-strh-length', body + 32, 4, true));
      } else if (id === 'strf') {
        push(out, d, u('avi-strf-word0', body, 4, true), u('avi-strf-word1', body + 4, 4, true));
        push(out, d, u('avi-strf-word2', body + 8, 4, true));
      } else if (id === 'VP8X') {
        push(out, d, u('webp-VP8X-width', body + 4, 3, true), u('webp-VP8X-height', body + 7, 3, true));
      } else if (id === 'VP8 ') {
        // frame tag (3), start code (3), then 14-bit width and height with 2 scale bits each
        push(out, d, u('webp-VP8-width', body + 6, 2, true), u('webp-VP8-height', body + 8, 2, true));
      } else if (id === 'VP8L') {
        push(out, d, u('webp-VP8L-dimensions', body + 1, 4, true));
      } else if (id === 'ANIM' || id === 'ANMF') {
        push(out, d, u(`webp-${id}-word`, body + 4, 4, true));
      }
      if (id === 'LIST' && depth < 6) walk(body + 4, Math.min(end, body + size), depth + 1);
      i = body + size + (size % 2);
    }
  };
  walk(12, d.length, 0);
}

/** Matroska/WebM master elements worth descending into (their children carry sizes too). */
const EBML_MASTERS = new Set([
  0x1a45dfa3, 0x18538067, 0x114d9b74, 0x4dbb, 0x1549a966, 0x1654ae6b, 0xae, 0xe0, 0xe1, 0x1f43b675, 0xa0, 0x1c53bb6b,
  0xbb, 0xb7, 0x1254c367, 0x7373, 0x1043a770, 0x6d80, 0x6240, 0x5034,
]);
/** Unsigned values decoders size buffers by: PixelWidth, PixelHeight, Channels, BitDepth, DocTypeReadVersion… */
const EBML_NUMBERS = new Set([0xb0, 0xba, 0x9f, 0x6264, 0x4285, 0x42f2, 0x42f3, 0x23e383, 0x2ad7b1, 0xd7, 0x83]);

function readVint(d: Buffer, i: number, keepMarker: boolean): { value: number; width: number } | null {
  const first = d[i];
  if (first === undefined || first === 0) return null;
  const width = Math.clz32(first) - 23;
  if (i + width > d.length) return null;
  let value = keepMarker ? first : first & (0xff >> width);
  for (let k = 1; k < width; k++) value = value * 256 + d[i + k]!;
  return { value, width };
}

function walkEbml(d: Buffer, out: Field[]): void {
  let elements = 0;
  const walk = (start: number, end: number, depth: number): void => {
    let i = start;
    while (i < end && elements++ < 3000) {
      const id = readVint(d, i, true);
      if (!id || id.width > 4) return;
      const size = readVint(d, i + id.width, false);
      if (!size) return;
      const sizeAt = i + id.width;
      const body = sizeAt + size.width;
      const label = `ebml-${id.value.toString(16)}`;
      push(out, d, { kind: 'vint', label: `${label}-size`, offset: sizeAt, width: size.width });
      const unknown = size.value === 2 ** (7 * size.width) - 1;
      if (EBML_NUMBERS.has(id.value) && size.value >= 1 && size.value <= 8) {
        const width = size.value === 8 ? 8 : size.value >= 4 ? 4 : size.value >= 3 ? 3 : size.value >= 2 ? 2 : 1;
        push(out, d, u(`${label}-value`, body + size.value - width, width));
      }
      if (EBML_MASTERS.has(id.value) && depth < 8) {
        walk(body, unknown ? end : Math.min(end, body + size.value), depth + 1);
        if (unknown) return;
      }
      i = body + size.value;
    }
  };
  walk(0, d.length, 0);
}

function walkGif(d: Buffer, out: Field[]): void {
  if (d.length < 13) return;
  push(out, d, u('gif-width', 6, 2, true), u('gif-height', 8, 2, true), u('gif-flags', 10, 1));
  let i = 13 + (d[10]! & 0x80 ? 3 * 2 ** ((d[10]! & 7) + 1) : 0);
  const skipSubBlocks = (j: number): number => {
    for (let n = 0; j < d.length && n < 100_000; n++) {
      const len = d[j]!;
      if (len === 0) return j + 1;
      if (n < 4) push(out, d, u('gif-subblock-length', j, 1));
      j += len + 1;
    }
    return d.length;
  };
  for (let n = 0; n < 100 && i < d.length; n++) {
    const block = d[i]!;
    if (block === 0x21) i = skipSubBlocks(i + 2);
    else if (block === 0x2c) {
      push(out, d, u('gif-frame-left', i + 1, 2, true), u('gif-frame-top', i + 3, 2, true));
      push(out, d, u('gif-frame-width', i + 5, 2, true), u('gif-frame-height', i + 7, 2, true));
      const flags = d[i + 9] ?? 0;
      i += 10 + (flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0);
      push(out, d, u('gif-lzw-min-code-size', i, 1));
      i = skipSubBlocks(i + 1);
    } else return;
  }
}

function walkTiff(d: Buffer, out: Field[]): void {
  const le = d[0] === 0x49;
  const r32 = (i: number): number => (le ? d.readUInt32LE(i) : d.readUInt32BE(i));
  const r16 = (i: number): number => (le ? d.readUInt16LE(i) : d.readUInt16BE(i));
  if (d.length < 8) return;
  push(out, d, u('tiff-ifd-offset', 4, 4, le));
  const ifd = r32(4);
  if (ifd + 2 > d.length) return;
  push(out, d, u('tiff-ifd-count', ifd, 2, le));
  const count = Math.min(r16(ifd), 200);
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + 12 * k;
    if (e + 12 > d.length) return;
    const tag = r16(e).toString(16);
    push(out, d, u(`tiff-${tag}-type`, e + 2, 2, le), u(`tiff-${tag}-count`, e + 4, 4, le));
    push(out, d, u(`tiff-${tag}-value`, e + 8, 4, le));
  }
  push(out, d, u('tiff-next-ifd', ifd + 2 + 12 * count, 4, le));
}

/** Numbers a PDF reader trusts: stream lengths, xref offsets, counts, image sizes. */
const PDF_NUMBERS =
  /(\/Length|startxref|\/Count|\/Size|\/N|\/First|\/Prev|\/Width|\/Height|\/BitsPerComponent|\/Columns|\/Predictor|\/W\s*\[)\s*(\d+)/g;
const PDF_XREF_ENTRY = /(\d{10}) \d{5} n/g;

function walkPdf(d: Buffer, out: Field[]): void {
  const text = d.toString('latin1');
  for (const m of text.matchAll(PDF_NUMBERS)) {
    const digits = m[2]!;
    const offset = m.index + m[0].length - digits.length;
    out.push({ kind: 'ascii', label: `pdf-${m[1]!.replace(/[^A-Za-z]/g, '')}`, offset, width: digits.length });
    if (out.length >= MAX_FIELDS) return;
  }
  let entries = 0;
  for (const m of text.matchAll(PDF_XREF_ENTRY)) {
    out.push({ kind: 'ascii', label: 'pdf-xref-offset', offset: m.index, width: 10 });
    if (++entries >= 100 || out.length >= MAX_FIELDS) return;
  }
}

function walkId3(d: Buffer, out: Field[]): void {
  // ID3v2: a synchsafe 28-bit size at 6; an MPEG frame header (four bytes) right after the tag.
  push(out, d, u('id3-size', 6, 4), u('id3-flags', 5, 1));
  if (d.length < 10) return;
  const size = ((d[6]! & 0x7f) << 21) | ((d[7]! & 0x7f) << 14) | ((d[8]! & 0x7f) << 7) | (d[9]! & 0x7f);
  push(out, d, u('mpeg-frame-header', 10 + size, 4));
}
