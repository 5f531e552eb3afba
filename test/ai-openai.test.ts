/**
 * The OpenAI-compatible provider (src/ai/openai/) against a real HTTP server on loopback that answers from what
 * it receives: the decoded image, the probed audio, the given text. Each test uses model names of its own, so the
 * server's request log and scripted failures of one test never touch another's.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createOpenAiModels, type OpenAiOptions } from '../src/ai/openai/index.js';
import type { TranscriptSegment } from '../src/ai/types.js';
import { MediaError } from '../src/lib/errors.js';
import { withPdf } from '../src/lib/pdf.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { CORPUS, tempDir } from './helpers.js';
import { startOpenAiServer, type FakeOpenAiServer, type RecordedRequest } from './support/openai-server.js';

const KEY = 'sk-test-0123456789abcdefSECRET';
const tools = resolveToolPaths();
let server: FakeOpenAiServer;
let dir: string;

const signal = (): AbortSignal => new AbortController().signal;
const name = (what: string): string => `${what}-${randomUUID().slice(0, 8)}`;
const seen = (model: string): RecordedRequest[] => server.requests.filter((r) => r.model === model);

/** Aborts `controller` as soon as the server has a request for `model` (not after a guessed delay); when. */
async function abortOnceSeen(model: string, controller: AbortController, reason: Error): Promise<number> {
  await expect.poll(() => seen(model).length, { timeout: 60_000, interval: 50 }).toBeGreaterThan(0);
  controller.abort(reason);
  return Date.now();
}

function models(over: Partial<OpenAiOptions> = {}) {
  return createOpenAiModels({
    apiKey: KEY,
    baseURL: server.url,
    visionModel: name('vision'),
    chatModel: name('chat'),
    transcribeModel: name('whisper'),
    timeoutMs: 20_000,
    maxConcurrency: 2,
    ffmpeg: tools.ffmpeg,
    // The production waits (1, 4, 15 s) make no other difference here.
    retryDelaysMs: [100, 200, 300],
    ...over,
  });
}

function ffprobeDuration(file: string): number {
  const out = execFileSync(tools.ffprobe, ['-v', 'error', '-show_format', '-of', 'json', file]).toString();
  return Number((JSON.parse(out) as { format: { duration: string } }).format.duration);
}

async function jpeg(file: string): Promise<{ image: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(file)
    .rotate()
    .resize(1024, 1024, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 85 })
    .toBuffer({ resolveWithObject: true });
  return { image: data, width: info.width, height: info.height };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function sumUsage(reqs: RecordedRequest[]): { input: number; output: number; total: number } {
  let input = 0;
  let output = 0;
  let total = 0;
  for (const r of reqs) {
    const u = r.usage as Record<string, number> | null;
    if (!u) continue;
    input += u.prompt_tokens ?? u.input_tokens ?? 0;
    output += u.completion_tokens ?? u.output_tokens ?? 0;
    total += u.total_tokens ?? 0;
  }
  return { input, output, total };
}

/** Reduce calls get the partial summaries ("Part 1: …"); map calls get pieces of the text itself. */
const isReduce = (q: RecordedRequest): boolean => /^Part \d+/.test(q.document?.firstWords ?? '');

/** Segments that start at 0, end at `duration`, and follow each other without gap or overlap. */
function expectContinuous(segments: TranscriptSegment[], duration: number): void {
  expect(segments.length).toBeGreaterThan(0);
  expect(segments[0]!.start).toBe(0);
  for (let i = 1; i < segments.length; i++) {
    expect(Math.abs(segments[i]!.start - segments[i - 1]!.end)).toBeLessThan(0.01);
    expect(segments[i]!.end).toBeGreaterThan(segments[i]!.start);
  }
  expect(Math.abs(segments.at(-1)!.end - duration)).toBeLessThan(0.25);
}

let voiceMp3: string;
let voiceSec: number;
let longMp3: string;
let longSec: number;

beforeAll(async () => {
  server = await startOpenAiServer();
  dir = tempDir('openai');
  voiceMp3 = path.join(dir, 'voice-memo.mp3');
  execFileSync(tools.ffmpeg, [
    '-v', 'error', '-i', path.join(CORPUS, 'audio', 'voice-memo.wav'),
    '-ac', '1', '-ar', '16000', '-c:a', 'libmp3lame', '-b:a', '32k', '-y', voiceMp3,
  ]); // prettier-ignore
  voiceSec = ffprobeDuration(voiceMp3);
  // 25 minutes of a tone, long enough to be cut into many chunks.
  longMp3 = path.join(dir, 'long.mp3');
  execFileSync(tools.ffmpeg, [
    '-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=16000:duration=1500',
    '-ac', '1', '-c:a', 'libmp3lame', '-compression_level', '9', '-b:a', '32k', '-y', longMp3,
  ]); // prettier-ignore
  longSec = ffprobeDuration(longMp3);
});

afterAll(async () => {
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('vision', () => {
  test('describes the picture the server decoded, names provider and model, counts usage', async () => {
    const m = models();
    const flowers = await jpeg(path.join(CORPUS, 'image', 'flowers.jpeg'));
    const small = await jpeg(path.join(CORPUS, 'image', '320x240.jpg'));
    const a = await m.vision.analyze({ ...flowers, mime: 'image/jpeg' }, { signal: signal() });
    const b = await m.vision.analyze({ ...small, mime: 'image/jpeg' }, { signal: signal() });

    const [ra, rb] = seen(m.vision.model);
    expect(ra?.structured).toBe('json_schema');
    expect(ra?.authorization).toBe(`Bearer ${KEY}`);
    // The server decoded the very JPEG we made, and the answer comes from it.
    expect(ra?.image).toMatchObject({ width: flowers.width, height: flowers.height, format: 'jpeg' });
    expect(rb?.image).toMatchObject({ width: 320, height: 240 });
    expect(a.caption).toContain(`${flowers.width}x${flowers.height}`);
    expect(b.caption).toContain('320x240');
    expect(a.labels[0]?.name).toBe(ra?.image?.color);
    expect(a.labels.map((l) => l.name)).toContain(flowers.width > flowers.height ? 'landscape' : 'portrait');
    expect(a.text).toBeNull(); // the server said '' (no visible text)
    expect(a.safety).toEqual({ flagged: false, categories: [] });
    expect(a.provider).toBe('openai');
    expect(a.model).toBe(m.vision.model);
    const reported = sumUsage([ra!]);
    expect(a.usage).toMatchObject({
      inputTokens: reported.input,
      outputTokens: reported.output,
      totalTokens: reported.total,
      calls: 1,
    });
    expect(a.usage.totalTokens).toBeGreaterThan(0);
  });

  test('gpt-4-* models get structured output by tool calling, and it works the same', async () => {
    const m = models({ visionModel: `gpt-4-turbo-${randomUUID().slice(0, 8)}` });
    const img = await jpeg(path.join(CORPUS, 'image', '320x240.jpg'));
    const r = await m.vision.analyze({ ...img, mime: 'image/jpeg' }, { signal: signal() });
    expect(seen(m.vision.model)[0]?.structured).toBe('tool');
    expect(r.caption).toContain('320x240');
    expect(r.usage.totalTokens).toBe(sumUsage(seen(m.vision.model)).total);
  });

  test('bounds what the model says: labels, scores, lengths', async () => {
    const m = models();
    server.script(m.vision.model, {
      kind: 'answer',
      patch: {
        caption: `  ${'very '.repeat(400)}long  `,
        labels: [
          ...Array.from({ length: 30 }, (_, i) => ({ name: `thing ${i}`, score: i / 10 - 1 })),
          { name: 'Thing 29', score: 0.5 },
          { name: '   ', score: 1 },
        ],
        tags: Array.from({ length: 50 }, (_, i) => `TAG${i}`),
        text: '  STOP  ',
        safety: { flagged: false, categories: ['violence'] },
      },
    });
    const img = await jpeg(path.join(CORPUS, 'image', '320x240.jpg'));
    const r = await m.vision.analyze({ ...img, mime: 'image/jpeg' }, { signal: signal() });
    expect(r.caption!.length).toBeLessThanOrEqual(300);
    expect(r.labels.length).toBe(20);
    expect(r.labels.every((l) => l.score >= 0 && l.score <= 1 && l.name.trim() === l.name && l.name)).toBe(true);
    expect(r.labels[0]).toEqual({ name: 'thing 20', score: 1 }); // 20..29 clamp to 1, best first, duplicate dropped
    expect(r.labels.filter((l) => l.name.toLowerCase() === 'thing 29')).toHaveLength(1);
    expect(r.tags).toHaveLength(20);
    expect(r.text).toBe('STOP');
    expect(r.safety).toEqual({ flagged: true, categories: ['violence'] });
  });

  test('without an API key a placeholder bearer token is sent to the base URL', async () => {
    const m = models({ apiKey: undefined });
    const img = await jpeg(path.join(CORPUS, 'image', '320x240.jpg'));
    const r = await m.vision.analyze({ ...img, mime: 'image/jpeg' }, { signal: signal() });
    expect(r.caption).toContain('320x240');
    const auth = seen(m.vision.model)[0]?.authorization ?? '';
    expect(auth).toMatch(/^Bearer \S+$/);
    expect(auth).not.toContain(KEY);
  });
});

describe('speech', () => {
  test('any audio file goes out as mono MP3 under a neutral name (not as it is, not with its name)', async () => {
    const m = models();
    const original = path.join(CORPUS, 'audio', 'voice-memo.wav');
    const r = await m.speech.transcribe({ audioPath: original, durationSec: null }, { signal: signal() });
    const [req] = seen(m.speech.model);
    expect(req!.audio!.filename).toBe('audio.mp3');
    // 16 kHz mono MP3 at 64 kb/s: far smaller than the 16-bit WAV it came from.
    expect(req!.audio!.bytes).toBeLessThan(fs.statSync(original).size / 2);
    expect(Math.abs(req!.audio!.durationSec - voiceSec)).toBeLessThan(0.2);
    expect(r.segments.length).toBeGreaterThan(0);
  });

  test('transcribes a real voice memo in one piece, timed over its real duration', async () => {
    const m = models();
    const r = await m.speech.transcribe({ audioPath: voiceMp3, durationSec: null }, { signal: signal() });
    const reqs = seen(m.speech.model);
    expect(reqs).toHaveLength(1);
    expect(reqs[0]!.audio!.responseFormat).toBe('verbose_json');
    expect(Math.abs(reqs[0]!.audio!.durationSec - voiceSec)).toBeLessThan(0.1);
    expect(r.chunks).toBe(1);
    expect(Math.abs(r.durationSec! - voiceSec)).toBeLessThan(0.1); // read from the file by ffmpeg
    expectContinuous(r.segments, voiceSec);
    expect(r.segments).toHaveLength(Math.ceil(voiceSec / 5));
    expect(r.text).toContain('words at 0s');
    expect(r.language).toBe('en'); // the server said "english"
    expect(r.quality).toBe('standard');
    expect(r.provider).toBe('openai');
    const reported = sumUsage(reqs);
    expect(r.usage).toMatchObject({ inputTokens: reported.input, totalTokens: reported.total, calls: 1 });
  });

  test('cuts 25 minutes into overlapping chunks and joins them into one continuous timeline', async () => {
    const m = models({ maxAudioChunkSec: 120, maxConcurrency: 3 });
    const r = await m.speech.transcribe({ audioPath: longMp3, durationSec: longSec }, { signal: signal() });
    const reqs = seen(m.speech.model);
    const expected = Math.ceil(longSec / 120);
    expect(r.chunks).toBe(expected);
    expect(reqs).toHaveLength(expected);
    // Every request carried real audio of the window's length (the last one: the rest).
    const durations = reqs.map((q) => q.audio!.durationSec).sort((a, b) => b - a);
    expect(durations[0]).toBeLessThan(120 + 1.5 + 0.5);
    expect(durations.at(-2)).toBeGreaterThan(120);
    expect(durations.reduce((a, b) => a + b, 0)).toBeGreaterThan(longSec);
    expectContinuous(r.segments, longSec);
    // One segment per 5 s of each chunk, the overlap counted once.
    expect(r.segments).toHaveLength(Math.ceil(longSec / 5));
    expect(r.usage.calls).toBe(expected);
    expect(r.usage.totalTokens).toBe(sumUsage(reqs).total);
    // Never more requests in flight than maxConcurrency.
    const events = reqs.flatMap((q) => [
      { t: q.receivedAt, d: 1 },
      { t: q.finishedAt!, d: -1 },
    ]);
    events.sort((a, b) => a.t - b.t || a.d - b.d);
    let inFlight = 0;
    let peak = 0;
    for (const e of events) peak = Math.max(peak, (inFlight += e.d));
    expect(peak).toBeLessThanOrEqual(3);
  });

  test('a server answering plain text gives one segment per chunk', async () => {
    const m = models();
    server.script(m.speech.model, { kind: 'plainText' });
    const r = await m.speech.transcribe({ audioPath: voiceMp3, durationSec: voiceSec }, { signal: signal() });
    expect(r.segments).toHaveLength(1);
    expect(r.segments[0]).toMatchObject({ start: 0, end: voiceSec });
    expect(r.segments[0]!.text).toMatch(/^words at 0s of a [\d.]+ second recording\.$/);
    expect(r.language).toBeNull(); // plain text says nothing about the language

    const chunked = models({ maxAudioChunkSec: 300 });
    server.script(chunked.speech.model, { kind: 'plainText', times: Infinity });
    const long = await chunked.speech.transcribe({ audioPath: longMp3, durationSec: longSec }, { signal: signal() });
    expect(long.chunks).toBe(5);
    expect(long.segments).toHaveLength(5);
    expectContinuous(long.segments, longSec);
    // Each chunk's own text, from the server's view of that chunk (its times start at 0 again).
    expect(long.segments.every((s) => /^words at 0s of a [\d.]+ second recording\. words at 5s/.test(s.text))).toBe(
      true,
    );
    expect(long.segments[0]!.end).toBeCloseTo(300.75, 2);
  });

  test('429 with Retry-After is waited out (SDK path)', async () => {
    const m = models();
    server.script(m.speech.model, { kind: 'status', status: 429, retryAfter: '1' });
    const r = await m.speech.transcribe({ audioPath: voiceMp3, durationSec: voiceSec }, { signal: signal() });
    const reqs = seen(m.speech.model);
    expect(reqs.map((q) => q.status)).toEqual([429, 200]);
    expect(reqs[1]!.receivedAt - reqs[0]!.receivedAt).toBeGreaterThanOrEqual(950);
    expectContinuous(r.segments, voiceSec);
    expect(r.usage.calls).toBe(2);
  });
});

describe('text', () => {
  test('a short text is summarized in one call', async () => {
    const m = models();
    const text = 'Quarterly results were strong. Revenue grew by twelve percent while costs fell.';
    const r = await m.text.summarize({ text, source: 'text' }, { signal: signal() });
    const reqs = seen(m.text.model);
    expect(reqs).toHaveLength(1);
    expect(reqs[0]!.schemaKind).toBe('summary');
    expect(r.chunks).toBe(1);
    expect(r.summary).toBe(
      `A text of ${text.length} characters that begins "Quarterly results were strong. Revenue grew".`,
    );
    expect(r.title).toBe('About Quarterly results were');
    expect(r.language).toBe('en');
    expect(r.chapters).toEqual([]);
    const reported = sumUsage(reqs);
    expect(r.usage).toMatchObject({
      inputTokens: reported.input,
      outputTokens: reported.output,
      totalTokens: reported.total,
      calls: 1,
    });
  });

  test('a long paper is summarized map-reduce, nothing lost, usage summed over every call', async () => {
    const m = models({ contextChars: 8_000, maxConcurrency: 3 });
    const text = await withPdf(path.join(CORPUS, 'pdf', 'tracemonkey-paper.pdf'), async (pdf) => {
      return (await pdf.getText()).text;
    });
    expect(text.length).toBeGreaterThan(30_000);
    const r = await m.text.summarize({ text, source: 'text' }, { signal: signal() });
    const reqs = seen(m.text.model);
    const reduces = reqs.filter((q) => isReduce(q));
    const maps = reqs.filter((q) => !isReduce(q));
    expect(r.chunks).toBeGreaterThan(1);
    expect(maps).toHaveLength(r.chunks);
    expect(reduces).toHaveLength(1);
    expect(maps.every((q) => q.document!.chars <= 8_000)).toBe(true);
    // The pieces together hold the whole text (only whitespace at the cuts is gone).
    const pieces = maps.reduce((n, q) => n + q.document!.chars, 0);
    expect(pieces).toBeGreaterThan(text.trim().length * 0.97);
    // The final answer is the reduce call's, made from the partial summaries.
    expect(r.summary).toContain('begins "Part 1');
    const reported = sumUsage(reqs);
    expect(r.usage).toMatchObject({
      inputTokens: reported.input,
      outputTokens: reported.output,
      totalTokens: reported.total,
      calls: reqs.length,
    });
  });

  test('partial summaries that do not fit one call are reduced in levels', async () => {
    const m = models({ contextChars: 2_000, maxConcurrency: 3 });
    const paragraphs = Array.from(
      { length: 600 },
      (_, i) => `Paragraph ${i} talks about item ${i}. It has a second sentence about item ${i}, and a third one.`,
    );
    const text = paragraphs.join('\n\n');
    expect(text.length).toBeGreaterThan(50_000);
    const r = await m.text.summarize({ text, source: 'text' }, { signal: signal() });
    const reqs = seen(m.text.model);
    const reduces = reqs.filter((q) => isReduce(q));
    expect(r.chunks).toBe(reqs.length - reduces.length);
    expect(r.chunks).toBeGreaterThan(20);
    expect(reduces.length).toBeGreaterThan(1);
    expect(reqs.every((q) => q.document!.chars <= 2_000)).toBe(true);
    expect(r.usage.totalTokens).toBe(sumUsage(reqs).total);
    expect(r.usage.calls).toBe(reqs.length);
  });

  test('chapters come from the timed lines of a transcript and are validated', async () => {
    const segments = Array.from({ length: 60 }, (_, i) => ({
      start: i * 10,
      end: i * 10 + 10,
      text: `Topic ${Math.floor(i / 20)} sentence ${i}.`,
    }));
    const m = models();
    const r = await m.text.summarize({ text: '', source: 'transcript', segments }, { signal: signal() });
    expect(seen(m.text.model)[0]!.document!.timedLines).toBe(60);
    expect(r.chapters.map((c) => c.start)).toEqual([0, 200, 400]);
    expect(r.chapters[1]!.title).toContain('Topic 1 sentence 20');

    // Untrusted chapters: out of range, negative, unsorted, duplicated, untitled.
    const m2 = models();
    server.script(m2.text.model, {
      kind: 'answer',
      patch: {
        chapters: [
          { start: 300, title: 'Middle' },
          { start: 9999, title: 'After the end' },
          { start: -5, title: 'Before the start' },
          { start: 12.345, title: 'Early' },
          { start: 300, title: 'Middle again' },
          { start: 100, title: '   ' },
        ],
      },
    });
    const r2 = await m2.text.summarize({ text: '', source: 'transcript', segments }, { signal: signal() });
    expect(r2.chapters).toEqual([
      { start: 12.3, title: 'Early' },
      { start: 300, title: 'Middle' },
    ]);
  });

  test('a long transcript keeps its chapter times through map-reduce', async () => {
    const segments = Array.from({ length: 400 }, (_, i) => ({
      start: i * 7.5,
      end: i * 7.5 + 7.5,
      text: `Segment ${i} says something about subject ${Math.floor(i / 50)} at some length.`,
    }));
    const m = models({ contextChars: 6_000 });
    const r = await m.text.summarize({ text: '', source: 'transcript', segments }, { signal: signal() });
    expect(r.chunks).toBeGreaterThan(1);
    const starts = new Set(segments.map((s) => s.start));
    expect(r.chapters.length).toBeGreaterThan(1);
    expect(r.chapters.every((c) => starts.has(c.start))).toBe(true);
    expect(r.chapters.map((c) => c.start)).toEqual([...r.chapters.map((c) => c.start)].sort((a, b) => a - b));
    // Chapters of later map pieces survived the reduce.
    expect(r.chapters.at(-1)!.start).toBeGreaterThan(1_000);
  });
});

describe('provider failures', () => {
  test('429 with Retry-After: waits as told, retries, one result from two requests', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'status', status: 429, retryAfter: '2', message: 'Rate limit reached' });
    const started = Date.now();
    const r = await m.text.summarize({ text: 'Some words to summarize.', source: 'text' }, { signal: signal() });
    const reqs = seen(m.text.model);
    expect(reqs.map((q) => q.status)).toEqual([429, 200]);
    // Two seconds as the server said (the backoff without Retry-After would be one).
    expect(reqs[1]!.receivedAt - reqs[0]!.receivedAt).toBeGreaterThanOrEqual(1_950);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_950);
    expect(r.summary).toContain('Some words to summarize.');
    expect(r.usage.calls).toBe(2);
    expect(r.usage.totalTokens).toBe(sumUsage(reqs).total);

    // A server asking for minutes is not waited for: the step fails with its answer, and is not retried again by the
    // queue (transient failures are retried in one layer, this one).
    const m2 = models();
    server.script(m2.text.model, { kind: 'status', status: 429, retryAfter: '120', message: 'Slow down' });
    const before = Date.now();
    const err = await rejection(m2.text.summarize({ text: 'More words.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('Slow down');
    expect((err as Error).message).toContain('asked to wait 120 s');
    expect(Date.now() - before).toBeLessThan(1_000);
    expect(seen(m2.text.model)).toHaveLength(1);
  });

  test('500 forever: bounded retries, then a final PROVIDER_ERROR (the queue does not multiply them)', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'status', status: 500, message: 'upstream exploded', times: Infinity });
    const err = await rejection(m.text.summarize({ text: 'Anything.', source: 'text' }, { signal: signal() }));
    expect(err).toBeInstanceOf(MediaError);
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('upstream exploded');
    expect((err as Error).message).toContain('after 4 tries');
    expect(seen(m.text.model)).toHaveLength(4);
  });

  test('400: not retried, the message names server, model and the server’s own words, never the key', async () => {
    const m = models();
    server.script(m.vision.model, { kind: 'status', status: 400, message: 'Invalid image: too small' });
    const img = await jpeg(path.join(CORPUS, 'image', '320x240.jpg'));
    const err = await rejection(m.vision.analyze({ ...img, mime: 'image/jpeg' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    const message = (err as Error).message;
    expect(message).toContain(m.vision.model);
    expect(message).toContain(new URL(server.url).host);
    expect(message).toContain('Invalid image: too small');
    expect(message).not.toContain(KEY);
    expect(seen(m.vision.model)).toHaveLength(1);
  });

  test('401 echoing the key: the key is redacted from the message', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'status', status: 401, message: `Incorrect API key provided: ${KEY}.` });
    const err = await rejection(m.text.summarize({ text: 'Anything.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('Incorrect API key provided');
    expect((err as Error).message).not.toContain(KEY);
    expect((err as Error).message).not.toContain('SECRET');
  });

  test('malformed JSON once: asked again, succeeds', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'malformed' });
    const r = await m.text.summarize({ text: 'A fine text.', source: 'text' }, { signal: signal() });
    expect(seen(m.text.model)).toHaveLength(2);
    expect(r.summary).toContain('A fine text.');

    // Valid JSON of the wrong shape (the SDK's own zod check of json_schema answers) is handled alike.
    const m2 = models();
    server.script(m2.text.model, { kind: 'answer', patch: { keyPoints: 'not a list' } });
    const r2 = await m2.text.summarize({ text: 'A fine text.', source: 'text' }, { signal: signal() });
    expect(seen(m2.text.model).map((q) => q.structured)).toEqual(['json_schema', 'json_schema']);
    expect(r2.keyPoints).toEqual(['3 words', '0 timed lines']);
    expect(r2.usage.calls).toBe(2);
  });

  test('malformed JSON twice: a non-retryable PROVIDER_ERROR', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'malformed', times: 2 });
    const err = await rejection(m.text.summarize({ text: 'A fine text.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('did not match the schema');
    expect(seen(m.text.model)).toHaveLength(2);
  });

  test('a wrong shape from tool calling is retried once too', async () => {
    const m = models({ chatModel: `gpt-4-${randomUUID().slice(0, 8)}` });
    server.script(m.text.model, { kind: 'answer', patch: { keyPoints: 'not a list' }, times: 2 });
    const err = await rejection(m.text.summarize({ text: 'A fine text.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('did not match the schema');
    expect(seen(m.text.model).map((q) => q.structured)).toEqual(['tool', 'tool']);
  });

  test('abort during a slow answer rejects promptly with the reason, and the connection is closed', async () => {
    const m = models();
    server.script(m.text.model, { kind: 'delay', ms: 15_000 });
    const controller = new AbortController();
    const reason = new Error('step cancelled');
    const abortedAt = abortOnceSeen(m.text.model, controller, reason);
    const err = await rejection(m.text.summarize({ text: 'Slowly.', source: 'text' }, { signal: controller.signal }));
    expect(err).toBe(reason);
    // Promptly: well before the 15 s the server would have taken (a bound loose enough for a loaded machine).
    expect(Date.now() - (await abortedAt)).toBeLessThan(5_000);
    await expect.poll(() => seen(m.text.model)[0]?.closedEarly, { timeout: 3_000 }).toBe(true);
    expect(seen(m.text.model)).toHaveLength(1);
  });

  test('abort while a long recording is being transcribed stops every chunk', async () => {
    const m = models({ maxAudioChunkSec: 120 });
    server.script(m.speech.model, { kind: 'delay', ms: 15_000, times: Infinity });
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const abortedAt = abortOnceSeen(m.speech.model, controller, reason);
    const err = await rejection(
      m.speech.transcribe({ audioPath: longMp3, durationSec: longSec }, { signal: controller.signal }),
    );
    expect(err).toBe(reason);
    expect(Date.now() - (await abortedAt)).toBeLessThan(5_000);
    const reqs = seen(m.speech.model);
    expect(reqs.length).toBeGreaterThan(0);
    expect(reqs.length).toBeLessThanOrEqual(2);
    await expect.poll(() => reqs.every((q) => q.closedEarly), { timeout: 3_000 }).toBe(true);
  });

  test('a response slower than the timeout is retried, then a final PROVIDER_ERROR', async () => {
    const m = models({ timeoutMs: 400 });
    server.script(m.text.model, { kind: 'delay', ms: 5_000, times: Infinity });
    const err = await rejection(m.text.summarize({ text: 'Slowly.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('did not answer within 400 ms');
    const reqs = seen(m.text.model);
    expect(reqs).toHaveLength(4);
    await expect.poll(() => reqs.every((q) => q.closedEarly), { timeout: 3_000 }).toBe(true);
  });

  test('an unreachable server is a PROVIDER_ERROR after the retries', async () => {
    const closed = await startOpenAiServer();
    const url = closed.url;
    await closed.close();
    const m = models({ baseURL: url });
    const err = await rejection(m.text.summarize({ text: 'Anything.', source: 'text' }, { signal: signal() }));
    expect(err).toMatchObject({ code: 'PROVIDER_ERROR', retryable: false });
    expect((err as Error).message).toContain('could not be reached');
  });

  test('usage a server leaves out or reports as nonsense counts as zero, never NaN or negative', async () => {
    const m = models();
    server.script(
      m.text.model,
      { kind: 'usage', usage: null },
      { kind: 'usage', usage: { prompt_tokens: -100, completion_tokens: 'many', total_tokens: null } },
    );
    for (let i = 0; i < 2; i++) {
      const r = await m.text.summarize({ text: 'Words without a count.', source: 'text' }, { signal: signal() });
      expect(r.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 1 });
    }
  });

  test('a map-reduce whose partial summaries are long still ends, with a bounded number of calls', async () => {
    // The attack: a document (or a model) that makes every partial summary as long as the schema allows.
    const m = models({ contextChars: 1_000, maxConcurrency: 3 });
    server.script(m.text.model, { kind: 'answer', patch: { summary: 'x'.repeat(900) }, times: Infinity });
    const text = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} says one thing at some length. `.repeat(5)).join(
      '\n\n',
    );
    const r = await m.text.summarize({ text, source: 'text' }, { signal: signal() });
    const reqs = seen(m.text.model);
    expect(r.chunks).toBeGreaterThan(8);
    // Every level at least thirds the partials: far fewer reduce calls than map calls.
    expect(reqs.length).toBeLessThan(r.chunks * 2);
    expect(reqs.every((q) => q.document!.chars <= 1_000)).toBe(true);
  });
});
