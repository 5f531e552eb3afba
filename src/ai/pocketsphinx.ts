/**
 * Offline speech-to-text through CMU PocketSphinx (Debian's `pocketsphinx` and `pocketsphinx-en-us`): small, English
 * only and rough (about one word in three wrong on read speech), but it needs no network and no GPU. The audio is
 * decoded once to 16 kHz mono PCM in a private temporary folder, cut into windows of about `chunkSec` at the quietest
 * moment near each boundary (so that words are rarely split), and each window goes to its own
 * `pocketsphinx_continuous` child, a few at a time. Words come back with their times and are grouped into
 * sentence-sized segments at pauses.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MediaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import { emptyUsage, type SpeechModel, type SpeechResult, type TranscriptSegment } from './types.js';

export const POCKETSPHINX_BINARY = 'pocketsphinx_continuous';
/** Where `pocketsphinx-en-us` puts the model; a build from source puts it under its own prefix instead. */
const DEBIAN_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';
/** The PTM acoustic model pocketsphinx 5prealpha ships (its feat.params says `-model ptm`). */
const MODEL_NAME = 'cmusphinx-en-us-ptm-5.2';

const SAMPLE_RATE = 16_000;
const BYTES_PER_SECOND = SAMPLE_RATE * 2;
/** One line per word (`word start end confidence`): a few KB per minute. Anything past this is not a transcript. */
const MAX_STDOUT_BYTES = 1024 * 1024;
/**
 * Segments end at a pause of LONG_PAUSE_SEC; once they last MIN_SEGMENT_SEC, also at a shorter pause or where the
 * recognizer's own voice detection ended an utterance (sentence ends in read speech, measured: 0.2 to 0.5 s); and at
 * MAX_SEGMENT_SEC whatever comes.
 */
const LONG_PAUSE_SEC = 1;
const PAUSE_SEC = 0.3;
const MIN_SEGMENT_SEC = 3;
const MAX_SEGMENT_SEC = 12;

export interface PocketsphinxModelFiles {
  hmm: string;
  lm: string;
  dict: string;
}

/**
 * The `pocketsphinx_continuous` to use, or null when it or its English model is missing. `explicit` is a path (or a
 * bare name, looked up on `searchPath`); without it the name is looked up on `searchPath` (the PATH variable, which
 * config passes in).
 */
export function findPocketsphinx(searchPath: string | undefined, explicit?: string | null): string | null {
  const name = explicit || POCKETSPHINX_BINARY;
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : (searchPath ?? '')
        .split(path.delimiter)
        .filter((dir) => path.isAbsolute(dir))
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    if (isExecutableFile(candidate) && findPocketsphinxModel(candidate)) return candidate;
  }
  return null;
}

/** The acoustic model, language model and dictionary beside the binary's prefix, else where Debian puts them. */
export function findPocketsphinxModel(binary: string, modelDir?: string): PocketsphinxModelFiles | null {
  const dirs = modelDir ? [modelDir] : [prefixModelDir(binary), DEBIAN_MODEL_DIR];
  for (const dir of dirs) {
    const files = {
      hmm: path.join(dir, 'en-us'),
      lm: path.join(dir, 'en-us.lm.bin'),
      dict: path.join(dir, 'cmudict-en-us.dict'),
    };
    if ([path.join(files.hmm, 'mdef'), files.lm, files.dict].every(isFile)) return files;
  }
  return null;
}

export interface PocketsphinxOptions {
  binary: string;
  ffmpeg: string;
  /** Seconds of audio per recognizer run (default 30): longer windows cost memory, shorter ones split more words. */
  chunkSec?: number;
  /** Recognizer processes at a time (default 1: each keeps a core busy at about a third of real time). */
  concurrency?: number;
  /** The folder holding `en-us/`, `en-us.lm.bin` and `cmudict-en-us.dict`; found beside the binary when omitted. */
  modelDir?: string;
  log?: Logger;
}

interface Chunk {
  /** Byte offsets into the decoded PCM. */
  from: number;
  to: number;
}

export interface Word {
  word: string;
  start: number;
  end: number;
  /** The first word of an utterance (the recognizer heard silence before it). */
  opensUtterance: boolean;
}

export function createPocketsphinxSpeech(opts: PocketsphinxOptions): SpeechModel {
  const model = findPocketsphinxModel(opts.binary, opts.modelDir);
  if (!model) throw new Error(`no PocketSphinx en-us model found for ${opts.binary} (install pocketsphinx-en-us)`);
  const chunkSec = opts.chunkSec ?? 30;
  const concurrency = opts.concurrency ?? 1;
  if (!(chunkSec >= 5 && chunkSec <= 300)) throw new Error(`chunkSec must be between 5 and 300, got ${chunkSec}`);
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new Error(`concurrency must be 1 or more`);

  return {
    provider: 'pocketsphinx',
    model: MODEL_NAME,
    async transcribe(input, { signal }): Promise<SpeechResult> {
      signal.throwIfAborted();
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mo-pocketsphinx-'));
      try {
        const pcm = path.join(dir, 'audio.pcm');
        await decode(opts.ffmpeg, input.audioPath, input.inputFormat ?? null, pcm, input.durationSec, signal);
        const bytes = (await fsp.stat(pcm)).size;
        const chunks = await cutPoints(pcm, bytes, chunkSec);
        opts.log?.debug({ audio: input.audioPath, chunks: chunks.length }, 'pocketsphinx: recognizing');
        let latencyMs = 0;
        const perChunk = await inPool(chunks.length, concurrency, signal, async (i, chunkSignal) => {
          const chunk = chunks[i] ?? { from: 0, to: 0 };
          const started = performance.now();
          try {
            return await recognize(opts.binary, model, pcm, chunk, path.join(dir, `chunk-${i}`), chunkSec, chunkSignal);
          } finally {
            latencyMs += performance.now() - started;
          }
        });
        const durationSec = round(bytes / BYTES_PER_SECOND);
        const segments = toSegments(perChunk.flat(), durationSec);
        return {
          provider: 'pocketsphinx',
          model: MODEL_NAME,
          text: segments.map((s) => s.text).join(' '),
          language: 'en',
          durationSec,
          segments,
          chunks: chunks.length,
          quality: 'rough',
          usage: { ...emptyUsage(), calls: chunks.length, latencyMs: Math.round(latencyMs) },
        };
      } catch (err) {
        // Whatever a killed child reported, the caller asked for the abort and gets its reason back.
        if (signal.aborted) throw signal.reason;
        throw err;
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** The first audio track as raw 16 kHz mono 16-bit PCM: exact sample offsets make the cuts and times exact. */
async function decode(
  ffmpeg: string,
  audioPath: string,
  inputFormat: string | null,
  target: string,
  durationSec: number | null,
  signal: AbortSignal,
): Promise<void> {
  try {
    await runTool(
      ffmpeg,
      [
        ...['-v', 'error', '-nostdin', '-y', '-protocol_whitelist', 'file'],
        ...(inputFormat ? ['-f', inputFormat] : []),
        ...['-i', audioPath, '-map', '0:a:0', '-vn'],
        ...['-ac', '1', '-ar', String(SAMPLE_RATE), '-c:a', 'pcm_s16le', '-f', 's16le', target],
      ],
      { timeoutMs: Math.max(120_000, (durationSec ?? 0) * 1000), signal },
    );
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the audio cannot be decoded: ${lastLine(err.stderr)}`);
    throw err;
  }
}

/**
 * Windows of at most `chunkSec`, each ending at the quietest 200 ms of the last few seconds before its limit: a pause
 * between words when there is one, so a word is seldom cut in two.
 */
async function cutPoints(pcm: string, bytes: number, chunkSec: number): Promise<Chunk[]> {
  const chunkBytes = Math.round(chunkSec * SAMPLE_RATE) * 2;
  const searchBytes = Math.round(Math.min(5, chunkSec / 3) * SAMPLE_RATE) * 2;
  const chunks: Chunk[] = [];
  const file = await fsp.open(pcm, 'r');
  try {
    let from = 0;
    while (bytes - from > chunkBytes) {
      const limit = from + chunkBytes;
      const window = Buffer.alloc(searchBytes);
      const { bytesRead } = await file.read(window, 0, searchBytes, limit - searchBytes);
      const to = limit - searchBytes + quietestOffset(window.subarray(0, bytesRead));
      chunks.push({ from, to });
      from = to;
    }
    if (bytes - from >= 2) chunks.push({ from, to: bytes });
  } finally {
    await file.close();
  }
  return chunks;
}

/** The byte offset (even) of the middle of the lowest-energy 200 ms in 16-bit PCM, scanned in 10 ms frames. */
function quietestOffset(samples: Buffer): number {
  const frameBytes = (SAMPLE_RATE / 100) * 2;
  const energies: number[] = [];
  for (let at = 0; at + frameBytes <= samples.length; at += frameBytes) {
    let sum = 0;
    for (let i = at; i < at + frameBytes; i += 2) sum += samples.readInt16LE(i) ** 2;
    energies.push(sum);
  }
  const span = 20;
  if (energies.length <= span) return samples.length - (samples.length % 2);
  let run = energies.slice(0, span).reduce((a, b) => a + b, 0);
  let best = run;
  let bestAt = 0;
  for (let i = span; i < energies.length; i++) {
    run += (energies[i] ?? 0) - (energies[i - span] ?? 0);
    if (run < best) [best, bestAt] = [run, i - span + 1];
  }
  return (bestAt + span / 2) * frameBytes;
}

/**
 * Runs `task(i)` for i in [0, count) with at most `limit` at a time, results in order. The first failure stops the
 * rest (their children are killed through the signal each task gets) and is thrown once every task has settled, so no
 * child outlives the call.
 */
async function inPool<T>(
  count: number,
  limit: number,
  signal: AbortSignal,
  task: (i: number, signal: AbortSignal) => Promise<T>,
): Promise<T[]> {
  const stop = new AbortController();
  const taskSignal = AbortSignal.any([signal, stop.signal]);
  const results: T[] = [];
  let next = 0;
  const failures: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (!taskSignal.aborted && next < count) {
      const i = next++;
      try {
        results[i] = await task(i, taskSignal);
      } catch (error) {
        failures.push(error);
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  signal.throwIfAborted();
  if (failures.length > 0) throw failures[0];
  return results;
}

/** One window through the recognizer: its words, timed from the start of the recording. */
async function recognize(
  binary: string,
  model: PocketsphinxModelFiles,
  pcm: string,
  chunk: Chunk,
  base: string,
  chunkSec: number,
  signal: AbortSignal,
): Promise<Word[]> {
  const wav = `${base}.wav`;
  // Its log goes to a file: on stderr the INFO lines drown the one line that says what went wrong.
  const logFile = `${base}.log`;
  await writeWav(pcm, chunk, wav);
  try {
    const out = await runTool(
      binary,
      [
        ...['-hmm', model.hmm, '-lm', model.lm, '-dict', model.dict],
        ...['-infile', wav, '-time', 'yes', '-logfn', logFile],
      ],
      // About a third of real time on one core; generous for a loaded machine.
      { timeoutMs: 60_000 + chunkSec * 5_000, signal, maxStdoutBytes: MAX_STDOUT_BYTES },
    );
    return parseWords(out.toString('utf8'), chunk.from / BYTES_PER_SECOND);
  } catch (err) {
    if (err instanceof ToolError) {
      const why = err.exitCode === null ? err.message : await failureLine(logFile);
      const at = `${round(chunk.from / BYTES_PER_SECOND)} s`;
      throw new MediaError('PROVIDER_ERROR', `pocketsphinx failed on the audio from ${at}: ${why}`);
    }
    throw err;
  } finally {
    await fsp.rm(wav, { force: true });
  }
}

/** A window of the PCM as a WAV with the plain 44-byte header pocketsphinx_continuous expects (it skips 44 bytes). */
async function writeWav(pcm: string, chunk: Chunk, target: string): Promise<void> {
  const length = chunk.to - chunk.from;
  const data = Buffer.alloc(44 + length);
  data.write('RIFF', 0, 'ascii');
  data.writeUInt32LE(36 + length, 4);
  data.write('WAVEfmt ', 8, 'ascii');
  data.writeUInt32LE(16, 16);
  data.writeUInt16LE(1, 20); // PCM
  data.writeUInt16LE(1, 22); // mono
  data.writeUInt32LE(SAMPLE_RATE, 24);
  data.writeUInt32LE(BYTES_PER_SECOND, 28);
  data.writeUInt16LE(2, 32);
  data.writeUInt16LE(16, 34);
  data.write('data', 36, 'ascii');
  data.writeUInt32LE(length, 40);
  const file = await fsp.open(pcm, 'r');
  try {
    await file.read(data, 44, length, chunk.from);
  } finally {
    await file.close();
  }
  await fsp.writeFile(target, data);
}

/** The last ERROR or FATAL line of a recognizer log (its tail only: the log can be long). */
async function failureLine(logFile: string): Promise<string> {
  let tail = '';
  try {
    const file = await fsp.open(logFile, 'r');
    try {
      const { size } = await file.stat();
      const length = Math.min(size, 8192);
      const buf = Buffer.alloc(length);
      await file.read(buf, 0, length, size - length);
      tail = buf.toString('utf8');
    } finally {
      await file.close();
    }
  } catch {
    return 'it printed no log';
  }
  const lines = tail.split('\n').filter((l) => l.trim());
  const line = lines.findLast((l) => /^(ERROR|FATAL)/.test(l)) ?? lines.at(-1) ?? 'it printed no log';
  return line
    .replace(/^(ERROR|FATAL(_ERROR)?): "[^"]*", line \d+: /, '')
    .trim()
    .slice(0, 300);
}

/** `word start end confidence` lines (`-time yes`); the hypothesis lines between them have no numbers. */
const WORD_LINE = /^(\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) \S+$/;
/** Sentence markers, silence, noise and filler tokens (`<s>`, `<sil>`, `[NOISE]`, `++UM++`, `(NULL)`). */
const NOT_A_WORD = /^(<.*>|\[.*\]|\+\+.*\+\+|\(NULL\))$/;

export function parseWords(stdout: string, offsetSec: number): Word[] {
  const words: Word[] = [];
  let opensUtterance = true;
  for (const line of stdout.split('\n')) {
    const m = WORD_LINE.exec(line.trim());
    if (!m?.[1]) continue;
    if (m[1] === '<s>') opensUtterance = true;
    if (NOT_A_WORD.test(m[1])) continue;
    // `and(2)`: the second pronunciation of "and" in the dictionary.
    const word = m[1].replace(/\(\d+\)$/, '');
    words.push({ word, start: offsetSec + Number(m[2]), end: offsetSec + Number(m[3]), opensUtterance });
    opensUtterance = false;
  }
  return words;
}

/** Words grouped into sentence-sized segments (see PAUSE_SEC), times in ms and inside the recording. */
export function toSegments(words: Word[], durationSec: number): TranscriptSegment[] {
  const segments: TranscriptSegment[] = [];
  let current: { start: number; end: number; words: string[] } | null = null;
  const flush = (): void => {
    if (current)
      segments.push({
        start: round(Math.min(current.start, durationSec)),
        end: round(Math.min(current.end, durationSec)),
        text: current.words.join(' '),
      });
    current = null;
  };
  for (const w of words) {
    if (current) {
      const pause = w.start - current.end;
      const long = w.start - current.start >= MIN_SEGMENT_SEC;
      if (
        pause >= LONG_PAUSE_SEC ||
        (long && (pause >= PAUSE_SEC || w.opensUtterance)) ||
        w.end - current.start > MAX_SEGMENT_SEC
      )
        flush();
    }
    if (current) {
      current.end = Math.max(current.end, w.end);
      current.words.push(w.word);
    } else current = { start: w.start, end: w.end, words: [w.word] };
  }
  flush();
  return segments;
}

function prefixModelDir(binary: string): string {
  let real = binary;
  try {
    real = fs.realpathSync(binary);
  } catch {
    // A missing binary has no model either; the caller's file checks say so.
  }
  return path.resolve(path.dirname(real), '..', 'share', 'pocketsphinx', 'model', 'en-us');
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function isExecutableFile(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return isFile(p);
  } catch {
    return false;
  }
}

function round(sec: number): number {
  return Math.round(sec * 1000) / 1000;
}
