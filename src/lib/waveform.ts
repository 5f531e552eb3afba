/**
 * Waveforms and loudness from ffmpeg's output: peaks computed while 16-bit PCM streams in (never a whole recording in
 * memory), written in the BBC audiowaveform JSON format that peaks.js reads; a small PNG of them; and the EBU R128
 * figures and silences that ffmpeg's `ebur128` and `silencedetect` filters print.
 */
import sharp from 'sharp';

/** The BBC audiowaveform JSON format, version 2 (https://github.com/bbc/audiowaveform/blob/master/doc/DataFormat.md). */
export interface WaveformData {
  version: 2;
  channels: number;
  sample_rate: number;
  samples_per_pixel: number;
  bits: 8;
  length: number;
  /** Per pixel and channel, the minimum then the maximum sample, as signed 8-bit values. */
  data: number[];
}

/**
 * Min/max pairs of mono signed 16-bit samples, `samplesPerPixel` samples each, at most `maxPoints` of them whatever
 * the length turns out to be: when the recording is longer than expected (a header that understates it, no duration
 * at all), neighbouring pairs are merged and samplesPerPixel doubles.
 */
export class PeakAccumulator {
  private mins: number[] = [];
  private maxs: number[] = [];
  private curMin = 0;
  private curMax = 0;
  /** Samples in the pixel being filled. */
  private count = 0;
  /** A byte left over from a chunk that ended in the middle of a sample. */
  private odd: number | null = null;
  samples = 0;

  constructor(
    public samplesPerPixel: number,
    private readonly maxPoints: number,
  ) {
    if (!Number.isInteger(samplesPerPixel) || samplesPerPixel < 1) throw new Error('samplesPerPixel must be >= 1');
    if (maxPoints < 2) throw new Error('maxPoints must be >= 2');
  }

  /** Takes little-endian s16 bytes, in chunks of any size. */
  push(chunk: Buffer): void {
    let start = 0;
    if (this.odd !== null && chunk.length > 0) {
      this.sample(Buffer.from([this.odd, chunk[0]!]).readInt16LE(0));
      this.odd = null;
      start = 1;
    }
    const end = start + Math.floor((chunk.length - start) / 2) * 2;
    for (let i = start; i < end; i += 2) this.sample(chunk.readInt16LE(i));
    if (end < chunk.length) this.odd = chunk[end]!;
  }

  private sample(v: number): void {
    if (this.count === 0) {
      this.curMin = v;
      this.curMax = v;
    } else {
      if (v < this.curMin) this.curMin = v;
      if (v > this.curMax) this.curMax = v;
    }
    this.samples++;
    if (++this.count === this.samplesPerPixel) this.close();
  }

  private close(): void {
    this.mins.push(this.curMin);
    this.maxs.push(this.curMax);
    this.count = 0;
    if (this.mins.length > this.maxPoints) this.halve();
  }

  /** Merges neighbouring pixels; an odd last one goes back into the pixel being filled. */
  private halve(): void {
    const mins: number[] = [];
    const maxs: number[] = [];
    const pairs = Math.floor(this.mins.length / 2);
    for (let i = 0; i < pairs; i++) {
      mins.push(Math.min(this.mins[2 * i]!, this.mins[2 * i + 1]!));
      maxs.push(Math.max(this.maxs[2 * i]!, this.maxs[2 * i + 1]!));
    }
    if (this.mins.length % 2 === 1) {
      const lastMin = this.mins.at(-1)!;
      const lastMax = this.maxs.at(-1)!;
      this.curMin = this.count > 0 ? Math.min(this.curMin, lastMin) : lastMin;
      this.curMax = this.count > 0 ? Math.max(this.curMax, lastMax) : lastMax;
      this.count += this.samplesPerPixel;
    }
    this.mins = mins;
    this.maxs = maxs;
    this.samplesPerPixel *= 2;
  }

  /** The waveform of everything pushed; a last, partly filled pixel counts as one. */
  finish(sampleRate: number): WaveformData {
    if (this.count > 0) this.close();
    const data: number[] = [];
    for (let i = 0; i < this.mins.length; i++) data.push(to8bit(this.mins[i]!), to8bit(this.maxs[i]!));
    return {
      version: 2,
      channels: 1,
      sample_rate: sampleRate,
      samples_per_pixel: this.samplesPerPixel,
      bits: 8,
      length: this.mins.length,
      data,
    };
  }
}

/** audiowaveform's 16-to-8-bit conversion: the high byte, rounded toward zero. */
function to8bit(v: number): number {
  return Math.trunc(v / 256);
}

/** The samples per pixel that give about `maxPoints` pixels for `expectedSamples`, and never fewer than `min`. */
export function samplesPerPixelFor(expectedSamples: number, maxPoints: number, min: number): number {
  if (!Number.isFinite(expectedSamples) || expectedSamples <= 0) return min;
  return Math.max(min, Math.ceil(expectedSamples / maxPoints));
}

/** True when `w` is a well-formed audiowaveform document (every field, and data of the length it declares). */
export function isWaveformData(w: unknown): w is WaveformData {
  if (typeof w !== 'object' || w === null) return false;
  const o = w as Record<string, unknown>;
  const int = (v: unknown, min: number): v is number => Number.isInteger(v) && (v as number) >= min;
  if (o.version !== 2 || o.bits !== 8) return false;
  if (!int(o.channels, 1) || !int(o.sample_rate, 1) || !int(o.samples_per_pixel, 1) || !int(o.length, 0)) return false;
  if (!Array.isArray(o.data) || o.data.length !== 2 * o.length * o.channels) return false;
  return o.data.every((v) => Number.isInteger(v) && (v as number) >= -128 && (v as number) <= 127);
}

/** A small picture of the waveform: light bars on a transparent background, one column per pixel pair or more. */
export async function waveformPng(w: WaveformData, width = 400, height = 64): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 4);
  const mid = (height - 1) / 2;
  const points = w.length;
  for (let x = 0; x < width && points > 0; x++) {
    // The pixels of the waveform this column covers.
    const from = Math.floor((x * points) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * points) / width));
    let lo = 127;
    let hi = -128;
    for (let p = from; p < to && p < points; p++) {
      lo = Math.min(lo, w.data[2 * p * w.channels]!);
      hi = Math.max(hi, w.data[2 * p * w.channels + 1]!);
    }
    const top = Math.round(mid - (hi / 128) * mid);
    const bottom = Math.round(mid - (lo / 128) * mid);
    for (let y = Math.max(0, top); y <= Math.min(height - 1, bottom); y++) {
      const i = (y * width + x) * 4;
      pixels[i] = 0x3b;
      pixels[i + 1] = 0x6e;
      pixels[i + 2] = 0xc4;
      pixels[i + 3] = 0xff;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 4 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

/** What ebur128's summary and silencedetect say, read line by line from ffmpeg's log as it is written. */
export interface LoudnessReading {
  integratedLufs: number | null;
  loudnessRangeLu: number | null;
  truePeakDbtp: number | null;
  silenceSec: number;
}

/**
 * Reads ffmpeg's stderr as it comes: silences are added up as they end (there can be thousands), the summary is
 * kept. Only the figures are kept, so an hour of log costs nothing.
 */
export class LoudnessLog {
  private partial = '';
  private openSilence: number | null = null;
  private silenceSec = 0;
  private summary = false;
  private section: 'integrated' | 'range' | 'peak' | null = null;
  private integrated: number | null = null;
  private range: number | null = null;
  private peak: number | null = null;
  /** The last lines, for an error message. */
  tail = '';

  push(text: string): void {
    this.tail = (this.tail + text).slice(-4096);
    const lines = (this.partial + text).split(/[\r\n]/);
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    // Only the filters' own lines count: the file's tags are printed too, and they say whatever the file wants.
    let m = /^\[silencedetect @ 0x[0-9a-f]+\] silence_start: (-?[\d.]+)/.exec(line);
    if (m) {
      this.openSilence = Math.max(0, Number(m[1]));
      return;
    }
    m = /^\[silencedetect @ 0x[0-9a-f]+\] silence_end: (-?[\d.]+) \| silence_duration: (-?[\d.]+)/.exec(line);
    if (m) {
      this.silenceSec += Math.max(0, Number(m[2]));
      this.openSilence = null;
      return;
    }
    if (/^\[Parsed_ebur128_\d+ @ 0x[0-9a-f]+\] Summary:/.test(line)) this.summary = true;
    if (!this.summary) return;
    if (/^ {2}Integrated loudness:/.test(line)) this.section = 'integrated';
    else if (/^ {2}Loudness range:/.test(line)) this.section = 'range';
    else if (/^ {2}True peak:/.test(line)) this.section = 'peak';
    m = /^ {4}(I|LRA|Peak):\s+(-?(?:[\d.]+|inf))\s/.exec(line);
    if (!m) return;
    const value = figure(m[2]!);
    if (m[1] === 'I' && this.section === 'integrated') this.integrated = value;
    if (m[1] === 'LRA' && this.section === 'range') this.range = value;
    if (m[1] === 'Peak' && this.section === 'peak') this.peak = value;
  }

  /** The figures once ffmpeg has ended; a silence still open runs to `durationSec`. */
  finish(durationSec: number): LoudnessReading & { summary: boolean } {
    if (this.partial) this.line(this.partial);
    this.partial = '';
    let silenceSec = this.silenceSec;
    if (this.openSilence !== null) silenceSec += Math.max(0, durationSec - this.openSilence);
    return {
      // ebur128 reports -70 LUFS (its absolute gate) for a recording with nothing above the gate: no loudness.
      integratedLufs: this.integrated !== null && this.integrated > -70 ? this.integrated : null,
      loudnessRangeLu: this.range,
      truePeakDbtp: this.peak,
      silenceSec: Math.min(silenceSec, durationSec),
      summary: this.summary && this.integrated !== null,
    };
  }
}

function figure(text: string): number | null {
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}
