/**
 * Seeded mutations of a media file: bit flips, byte sets, truncation, chunk duplication and removal, inserted junk,
 * and header fields (lengths, sizes, counts, dimensions) set to values decoders trip over, 0 and 0xFFFFFFFF first.
 * One to four of them stacked. Every choice comes from the case's Rng, so a seed and a case index give the same
 * bytes again; each mutation describes itself in a short label for the findings list.
 */
import zlib from 'node:zlib';
import { findFields, type Field } from './fields.js';
import { chance, int, pick, type Rng } from './rng.js';

export interface Mutated {
  data: Buffer;
  ops: string[];
}

type Op = (data: Buffer, rng: Rng) => { data: Buffer; op: string };

/** Bytes that mean something to parsers: zero, sign bits, all ones. */
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x0a];
/** Biggest piece one duplication copies: enough to repeat a frame or a chunk, not to grow files without end. */
const MAX_CHUNK = 64 * 1024;

/** Offsets near the start are where headers are: half of all picks land in the first 2 KiB. */
function offset(data: Buffer, rng: Rng): number {
  const head = Math.min(data.length, 2048);
  return chance(rng, 0.5) ? int(rng, head) : int(rng, data.length);
}

const bitFlip: Op = (data, rng) => {
  const out = Buffer.from(data);
  const flips = chance(rng, 0.8) ? 1 + int(rng, 4) : 1 + int(rng, 64);
  for (let k = 0; k < flips; k++) {
    const at = offset(out, rng);
    out[at]! ^= 1 << int(rng, 8);
  }
  return { data: out, op: `bitflip×${flips}` };
};

const byteSet: Op = (data, rng) => {
  const out = Buffer.from(data);
  const count = 1 + int(rng, 8);
  for (let k = 0; k < count; k++)
    out[offset(out, rng)] = chance(rng, 0.7) ? pick(rng, INTERESTING_BYTES) : int(rng, 256);
  return { data: out, op: `byteset×${count}` };
};

const truncate: Op = (data, rng) => {
  // A third of the cuts keep only a header's worth: decoders meet the end where they expect a field.
  const at = chance(rng, 0.3) ? int(rng, Math.min(data.length, 1024)) : int(rng, data.length);
  return { data: data.subarray(0, at), op: `truncate@${at}` };
};

const duplicateChunk: Op = (data, rng) => {
  const from = int(rng, data.length);
  const length = 1 + int(rng, Math.min(MAX_CHUNK, data.length - from));
  const to = int(rng, data.length + 1);
  const chunk = data.subarray(from, from + length);
  return { data: Buffer.concat([data.subarray(0, to), chunk, data.subarray(to)]), op: `dup[${from}+${length}]@${to}` };
};

const removeChunk: Op = (data, rng) => {
  const from = offset(data, rng);
  const length = 1 + int(rng, Math.min(MAX_CHUNK, data.length - from));
  return { data: Buffer.concat([data.subarray(0, from), data.subarray(from + length)]), op: `cut[${from}+${length}]` };
};

const insertJunk: Op = (data, rng) => {
  const at = offset(data, rng);
  const junk = Buffer.alloc(1 + int(rng, 256));
  const fill = chance(rng, 0.5) ? pick(rng, INTERESTING_BYTES) : -1;
  for (let k = 0; k < junk.length; k++) junk[k] = fill >= 0 ? fill : int(rng, 256);
  return { data: Buffer.concat([data.subarray(0, at), junk, data.subarray(at)]), op: `insert${junk.length}@${at}` };
};

/** Values for a field of `width` bytes whose current value is `now`: the edges first, then neighbours and chance. */
function interestingValue(width: 1 | 2 | 3 | 4 | 8, now: bigint, fileSize: number, rng: Rng): bigint {
  const max = (1n << BigInt(8 * width)) - 1n;
  const choices = [0n, 1n, max, max >> 1n, (max >> 1n) + 1n, max - 1n, now + 1n, now - 1n, now * 2n, now * 16n];
  if (width >= 4) choices.push(BigInt(fileSize), BigInt(fileSize) + 1n, 0x10000n, 0x7fffn);
  const value = chance(rng, 0.85) ? pick(rng, choices) : BigInt(int(rng, 2 ** 31)) * BigInt(int(rng, 2 ** 31));
  return ((value % (max + 1n)) + max + 1n) % (max + 1n);
}

function readUint(data: Buffer, f: Extract<Field, { kind: 'uint' }>): bigint {
  let v = 0n;
  for (let k = 0; k < f.width; k++) {
    const byte = data[f.littleEndian ? f.offset + f.width - 1 - k : f.offset + k]!;
    v = (v << 8n) | BigInt(byte);
  }
  return v;
}

function writeUint(data: Buffer, f: Extract<Field, { kind: 'uint' }>, value: bigint): void {
  for (let k = 0; k < f.width; k++) {
    const byte = Number((value >> BigInt(8 * k)) & 0xffn);
    data[f.littleEndian ? f.offset + k : f.offset + f.width - 1 - k] = byte;
  }
}

/** An EBML size: all ones (the "unknown size" of live streams), zero, or the largest known size. */
function setVint(data: Buffer, f: Extract<Field, { kind: 'vint' }>, rng: Rng): string {
  const marker = 0x80 >> (f.width - 1);
  const form = pick(rng, ['unknown', 'zero', 'max', 'random'] as const);
  for (let k = 0; k < f.width; k++) {
    const full = form === 'unknown' ? 0xff : form === 'zero' ? 0 : form === 'max' ? 0xff : int(rng, 256);
    data[f.offset + k] = k === 0 ? marker | (full & (marker - 1)) : full;
  }
  if (form === 'max') data[f.offset + f.width - 1] = 0xfe;
  return form;
}

/** A PDF number: huge, zero, negative, off by one, or shifted; padded to keep the xref offsets behind it half the time. */
function setAscii(data: Buffer, f: Extract<Field, { kind: 'ascii' }>, rng: Rng): { data: Buffer; value: string } {
  const now = Number(data.toString('latin1', f.offset, f.offset + f.width));
  const value = pick(rng, [
    '4294967295',
    '99999999999999999999',
    '0',
    '-1',
    String(now + 1),
    String(Math.max(0, now - 1)),
    String(now * 2),
    String(int(rng, 1_000_000)),
  ]);
  const padded = chance(rng, 0.5) && value.length <= f.width ? value.padStart(f.width, '0') : value;
  const replaced = Buffer.concat([
    data.subarray(0, f.offset),
    Buffer.from(padded, 'latin1'),
    data.subarray(f.offset + f.width),
  ]);
  return { data: replaced, value: padded };
}

const headerField: Op = (data, rng) => {
  const fields = findFields(data);
  if (fields.length === 0) return byteSet(data, rng);
  const f = pick(rng, fields);
  if (f.kind === 'ascii') {
    const { data: out, value } = setAscii(data, f, rng);
    return { data: out, op: `${f.label}@${f.offset}=${value}` };
  }
  const out = Buffer.from(data);
  if (f.kind === 'vint') return { data: out, op: `${f.label}@${f.offset}=${setVint(out, f, rng)}` };
  const value = interestingValue(f.width, readUint(out, f), data.length, rng);
  writeUint(out, f, value);
  let op = `${f.label}@${f.offset}=0x${value.toString(16)}`;
  // Half the time the chunk's CRC is made right again, so the new value reaches the decoder.
  if (f.crc && chance(rng, 0.5)) {
    out.writeUInt32BE(zlib.crc32(out.subarray(f.crc.start, f.crc.end)), f.crc.at);
    op += '+crc';
  }
  return { data: out, op };
};

/** Each operation with its weight: header fields most, as they reach the deepest code. */
const OPS: [Op, number][] = [
  [headerField, 35],
  [bitFlip, 20],
  [byteSet, 10],
  [truncate, 12],
  [duplicateChunk, 8],
  [removeChunk, 8],
  [insertJunk, 7],
];
const TOTAL_WEIGHT = OPS.reduce((s, [, w]) => s + w, 0);

function pickOp(rng: Rng): Op {
  let r = rng() * TOTAL_WEIGHT;
  for (const [op, w] of OPS) if ((r -= w) < 0) return op;
  return OPS[0]![0];
}

export function mutate(original: Buffer, rng: Rng): Mutated {
  const count = chance(rng, 0.6) ? 1 : chance(rng, 0.6) ? 2 : 3 + int(rng, 2);
  let data = original;
  const ops: string[] = [];
  for (let k = 0; k < count; k++) {
    // An empty file can only grow.
    const op = data.length === 0 ? insertJunk : pickOp(rng);
    const step = op(data, rng);
    data = step.data;
    ops.push(step.op);
  }
  return { data, ops };
}
