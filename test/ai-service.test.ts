/**
 * The AI steps through the real service (queues, workers, step threads) against an OpenAI-compatible server on
 * loopback that checks what it receives: the image it decodes, the audio it probes, the text it reads. The job
 * document is checked field by field against what that server saw and answered.
 */
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { probeMedia } from '../src/lib/probe.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { createProducer, type Producer } from '../src/queue/producer.js';
import {
  CORPUS,
  dropPrefix,
  finishedJobs,
  ServiceProcess,
  stepRuns,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
} from './helpers.js';
import { startOpenAiServer, type FakeOpenAiServer, type RecordedRequest } from './support/openai-server.js';

const prefix = uniquePrefix('ai-service');
let state: TestState;
let base: string;
let server: FakeOpenAiServer;
let service: ServiceProcess;
let producer: Producer;

const KEY = 'sk-test-0123456789';
const MODELS = { vision: 'vision-test', chat: 'chat-test', speech: 'whisper-test' };
const CONTEXT_CHARS = 20_000;

beforeAll(async () => {
  server = await startOpenAiServer();
  state = await TestState.create('ai-service');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(port),
    OPENAI_BASE_URL: server.url,
    OPENAI_API_KEY: KEY,
    VISION_MODEL: MODELS.vision,
    CHAT_MODEL: MODELS.chat,
    TRANSCRIBE_MODEL: MODELS.speech,
    AI_CONTEXT_CHARS: String(CONTEXT_CHARS),
    // The slow-provider test: a request that outlives the step's limit is aborted with it.
    STEP_TIMEOUTS: 'analyzeImage=8000',
    RETRY_BACKOFF_MS: '100',
  });
  await service.ready();
  producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
}, 120_000);

// A test's scripted failures never reach the next test.
afterEach(() => server.reset());

afterAll(async () => {
  await producer?.close();
  await service?.stop();
  await server?.close();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
});

async function run(jobId: string, file: string): Promise<{ doc: JobDocument; seen: RecordedRequest[] }> {
  const before = server.requests.length;
  await producer.enqueueJob({ jobId, file: { path: path.join(CORPUS, file) } });
  const [doc] = await finishedJobs(state, [jobId], 120_000);
  return { doc: doc!, seen: server.requests.slice(before) };
}

const tokensOf = (r: RecordedRequest): number => r.usage?.total_tokens ?? 0;

describe('with an OpenAI-compatible provider', () => {
  test('a photo gets a caption, labels and tags from the vision model, with tokens counted', async () => {
    const { doc, seen } = await run('photo', 'image/flowers.jpeg');
    expect(doc.status, JSON.stringify(doc.steps)).toBe('completed');
    const calls = seen.filter((r) => r.model === MODELS.vision);
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    // The service sent the picture itself, upright and at most 1024 px, and the key it was given.
    const source = await sharp(path.join(CORPUS, 'image/flowers.jpeg')).metadata();
    const scale = Math.min(1, 1024 / Math.max(source.width, source.height));
    expect(call.image).toMatchObject({
      width: Math.round(source.width * scale),
      height: Math.round(source.height * scale),
    });
    expect(call.authorization).toBe(`Bearer ${KEY}`);
    const analysis = doc.results.analysis!;
    expect(analysis.provider).toBe('openai');
    expect(analysis.model).toBe(MODELS.vision);
    // What the server derived from the decoded picture came back into the document.
    expect(analysis.caption).toContain(`${call.image!.width}x${call.image!.height}`);
    expect(analysis.labels.map((l) => l.name)).toContain(call.image!.color);
    expect(analysis.tags?.length).toBeGreaterThan(0);
    for (const l of analysis.labels) expect(l.score).toBeGreaterThanOrEqual(0);
    // The offline statistics stay beside the model's answer.
    expect(analysis.phash).toMatch(/^[0-9a-f]{16}$/);
    expect(analysis.usage).toMatchObject({ totalTokens: tokensOf(call), calls: 1 });
    expect(doc.usage?.totalTokens).toBe(tokensOf(call));
    // The API serves what the store holds: the caption and the usage survive its response schema.
    const served = (await (await fetch(`${base}/jobs/photo`)).json()) as JobDocument;
    expect(served.usage).toEqual(doc.usage);
    expect(served.results.analysis?.caption).toBe(analysis.caption);
  });

  test('a video with speech and no subtitles: a transcript, its SRT and VTT, an LLM summary with chapters', async () => {
    const { doc, seen } = await run('speech-video', 'video/speech-testsrc.mp4');
    expect(doc.status, JSON.stringify(doc.steps)).toBe('completed');
    const heard = seen.filter((r) => r.model === MODELS.speech);
    expect(heard.length).toBeGreaterThanOrEqual(1);
    // The server probed real audio as long as the video's.
    const probed = await probeMedia(resolveToolPaths().ffprobe, path.join(CORPUS, 'video/speech-testsrc.mp4'), {
      timeoutMs: 30_000,
    });
    const duration = probed.streams.find((st) => st.type === 'audio')!.durationSec!;
    const sent = heard.reduce((sum, r) => sum + (r.audio?.durationSec ?? 0), 0);
    expect(sent).toBeGreaterThan(duration - 1);
    const transcript = doc.results.transcript!;
    expect(transcript).toMatchObject({
      provider: 'openai',
      model: MODELS.speech,
      source: 'speech',
      quality: 'standard',
    });
    expect(transcript.segments).toBeGreaterThan(0);
    expect(transcript.text.length).toBeGreaterThan(0);
    const srt = await (await fetch(`${base}${transcript.srtUrl}`)).text();
    expect(srt).toMatch(/^1\n00:00:00,000 --> 00:00:\d\d,\d{3}\n/);
    const vtt = await fetch(`${base}${transcript.vttUrl}`);
    expect(vtt.headers.get('content-type')).toContain('text/vtt');
    expect(await vtt.text()).toMatch(/^WEBVTT\n/);

    const chats = seen.filter((r) => r.model === MODELS.chat);
    expect(chats).toHaveLength(1);
    // The chat model was given the timed transcript, and its chapters came back.
    expect(chats[0]!.document?.timedLines).toBeGreaterThan(0);
    const summary = doc.results.summary!;
    expect(summary).toMatchObject({ provider: 'openai', model: MODELS.chat, source: 'transcript', chunks: 1 });
    expect(summary.title).toBeTruthy();
    expect(summary.chapters?.length).toBeGreaterThan(0);
    for (const c of summary.chapters!) expect(c.start).toBeLessThanOrEqual(duration);
    // Usage: every model call of the job, summed.
    const total = [...heard, ...chats].reduce((n, r) => n + tokensOf(r), 0);
    expect(doc.usage?.totalTokens).toBe(total);
    expect(doc.usage?.calls).toBe(heard.length + chats.length);
  });

  test('a long PDF is summarized map-reduce, with every chunk and the reduce counted', async () => {
    const { doc, seen } = await run('long-pdf', 'pdf/tracemonkey-paper.pdf');
    expect(doc.status, JSON.stringify(doc.steps)).toBe('completed');
    const chats = seen.filter((r) => r.model === MODELS.chat);
    const summary = doc.results.summary!;
    // 83 k characters in chunks of at most 20 k: at least five map calls, then at least one reduce.
    expect(summary.chunks).toBeGreaterThanOrEqual(Math.ceil(doc.results.text!.chars / CONTEXT_CHARS));
    expect(chats.length).toBeGreaterThan(summary.chunks!);
    for (const c of chats) expect(c.document!.chars).toBeLessThanOrEqual(CONTEXT_CHARS + 2000);
    expect(summary.usage).toMatchObject({
      calls: chats.length,
      totalTokens: chats.reduce((n, r) => n + tokensOf(r), 0),
    });
    expect(summary.provider).toBe('openai');
    expect(summary.keyPoints?.length).toBeGreaterThan(0);
  });

  test('/metrics counts the tokens by provider and model', async () => {
    const inputTokens = async (): Promise<number> => {
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const line = new RegExp(
        `^media_ai_tokens_total\\{provider="openai",model="${MODELS.chat}",kind="input"\\} (\\d+)$`,
        'm',
      );
      return Number(line.exec(metrics)?.[1] ?? 0);
    };
    const before = await inputTokens();
    const { seen } = await run('metrics-pdf', 'pdf/three-pages.pdf');
    const sent = seen
      .filter((r) => r.model === MODELS.chat)
      .reduce((n, r) => n + (r.usage && 'prompt_tokens' in r.usage ? r.usage.prompt_tokens : 0), 0);
    expect(sent).toBeGreaterThan(0);
    expect((await inputTokens()) - before).toBe(sent);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`media_ai_requests_total\\{provider="openai",model="${MODELS.chat}",capability="text"\\} \\d+`),
    );
  });

  test('usage a server leaves out or reports negative counts as zero; /metrics keeps answering', async () => {
    server.script(
      MODELS.vision,
      { kind: 'usage', usage: null },
      { kind: 'usage', usage: { prompt_tokens: -100, completion_tokens: -5, total_tokens: -105 } },
    );
    for (const id of ['no-usage', 'negative-usage']) {
      const { doc } = await run(id, 'image/320x240.jpg');
      expect(doc.status, id).toBe('completed');
      expect(doc.results.analysis?.usage, id).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 0 });
    }
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).not.toMatch(/media_ai_tokens_total\{[^}]*\} (-|NaN)/);
  });
});

describe('provider failures', () => {
  test('429 with Retry-After is waited out and retried', async () => {
    server.script(MODELS.vision, { kind: 'status', status: 429, retryAfter: '1' });
    const { doc, seen } = await run('rate-limited', 'image/320x240.jpg');
    expect(doc.status).toBe('completed');
    const calls = seen.filter((r) => r.model === MODELS.vision);
    expect(calls.map((r) => r.status)).toEqual([429, 200]);
    expect(calls[1]!.receivedAt - calls[0]!.receivedAt).toBeGreaterThanOrEqual(900);
    expect(doc.results.analysis?.provider).toBe('openai');
  });

  test('a 400 fails the step at once with PROVIDER_ERROR; the job goes on', async () => {
    server.script(MODELS.vision, { kind: 'status', status: 400, message: 'this model does not take images' });
    const { doc, seen } = await run('bad-request', 'image/320x240.jpg');
    expect(doc.status).toBe('completed_with_errors');
    expect(seen.filter((r) => r.model === MODELS.vision)).toHaveLength(1);
    const step = doc.steps.analyzeImage!;
    expect(step).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'PROVIDER_ERROR' } });
    expect(step.error!.message).toContain(MODELS.vision);
    expect(step.error!.message).toContain('this model does not take images');
    expect(step.error!.message).not.toContain(KEY);
    expect(doc.results.thumbnails?.length).toBeGreaterThan(0);
  });

  test('a model slower than the step limit is aborted with the step', { timeout: 300_000 }, async () => {
    server.script(MODELS.vision, { kind: 'delay', ms: 60_000, times: 3 });
    const { doc, seen } = await run('slow-model', 'image/320x240.jpg');
    expect(doc.status).toBe('completed_with_errors');
    expect(doc.steps.analyzeImage).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    const calls = seen.filter((r) => r.model === MODELS.vision);
    expect(calls.length).toBe(doc.steps.analyzeImage!.attempts);
    // The HTTP request was closed when the step stopped, not left running for a minute.
    for (const c of calls) expect(c.closedEarly).toBe(true);
    expect((await stepRuns(state, 'slow-model')).filter((r) => r.step === 'analyzeImage')).toHaveLength(calls.length);
  });

  test('500 forever: retried in one layer, then the summary fails with PROVIDER_ERROR', async () => {
    // Retry-After: 0 only makes the test quick; without it the waits are 1, 4 and 15 s.
    server.script(MODELS.chat, { kind: 'status', status: 500, retryAfter: '0', times: Infinity });
    const { doc, seen } = await run('server-down', 'pdf/three-pages.pdf');
    expect(doc.status).toBe('completed_with_errors');
    // Retried inside the call only: the queue does not multiply the requests by its own attempts.
    expect(doc.steps.summarize).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'PROVIDER_ERROR' } });
    expect(seen.filter((r) => r.model === MODELS.chat)).toHaveLength(4);
  });
});
