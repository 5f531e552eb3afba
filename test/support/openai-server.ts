/**
 * A fake OpenAI-compatible server on loopback for the provider tests. It answers from what it actually receives:
 * the caption names the real size and colour of the decoded image, transcripts cover the real duration of the
 * uploaded audio (probed with ffprobe), summaries quote the given text. Every request is recorded, and failures
 * can be scripted per model (429 with Retry-After, 5xx, 400, malformed JSON, slow answers, plain-text transcripts).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import sharp from 'sharp';
import { resolveToolPaths, runTool } from '../../src/lib/tools.js';

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  model: string | null;
  authorization: string | null;
  receivedAt: number;
  /** When the answer was sent (or the connection closed). */
  finishedAt: number | null;
  /** How the client asked for structured output. */
  structured: 'json_schema' | 'tool' | 'json_object' | 'none';
  /** Which answer the schema asked for, from its properties. */
  schemaKind: 'vision' | 'summary' | 'other' | null;
  /** The decoded image of an image_url part. */
  image: { width: number; height: number; format: string; color: string } | null;
  /** The document between <document> markers (or the user text). */
  document: { chars: number; firstWords: string; timedLines: number } | null;
  /** The uploaded audio as ffprobe saw it. */
  audio: { bytes: number; durationSec: number; filename: string; responseFormat: string | null } | null;
  /** What the server answered. */
  status: number;
  usage: ChatUsage | { input_tokens: number; output_tokens: number; total_tokens: number } | null;
  /** The client closed the connection before the answer was sent. */
  closedEarly: boolean;
}

export type ScriptStep = (
  | { kind: 'status'; status: number; message?: string; retryAfter?: string }
  | { kind: 'malformed' }
  | { kind: 'delay'; ms: number }
  | { kind: 'plainText' }
  /** Fields laid over the answer the server would give (to send what a misbehaving model might). */
  | { kind: 'answer'; patch: Record<string, unknown> }
  /** The `usage` the server reports instead of the real one (`null`: none at all), as some servers do. */
  | { kind: 'usage'; usage: Record<string, unknown> | null }
) & { times?: number };

export interface FakeOpenAiServer {
  /** Base URL ending with /v1. */
  url: string;
  requests: RecordedRequest[];
  /** Queues answers for requests naming `model`; `times: Infinity` repeats a step forever. */
  script(model: string, ...steps: ScriptStep[]): void;
  /** Drops every scripted answer not yet used, so one test's script never reaches another test. */
  reset(): void;
  close(): Promise<void>;
}

const COLOURS: [string, number, number, number][] = [
  ['black', 0, 0, 0],
  ['white', 255, 255, 255],
  ['gray', 128, 128, 128],
  ['red', 200, 30, 30],
  ['orange', 240, 140, 20],
  ['yellow', 230, 220, 40],
  ['green', 40, 160, 50],
  ['blue', 40, 80, 200],
  ['purple', 130, 50, 170],
  ['pink', 240, 150, 190],
  ['brown', 120, 80, 40],
];

function colourName(r: number, g: number, b: number): string {
  let best = 'gray';
  let bestD = Infinity;
  for (const [name, cr, cg, cb] of COLOURS) {
    const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

const tokens = (chars: number): number => Math.ceil(chars / 4);

interface ChatBody {
  model?: string;
  messages?: { role: string; content: unknown }[];
  response_format?: {
    type: string;
    json_schema?: { name?: string; schema?: { properties?: Record<string, unknown> } };
  };
  tools?: { type: string; function: { name: string; parameters?: { properties?: Record<string, unknown> } } }[];
}

function textParts(content: unknown): string[] {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((p: { type?: string; text?: string }) => (p.type === 'text' && p.text ? [p.text] : []));
}

function imageUrls(content: unknown): string[] {
  if (!Array.isArray(content)) return [];
  return content.flatMap((p: { type?: string; image_url?: { url?: string } | string }) => {
    if (p.type !== 'image_url') return [];
    const url = typeof p.image_url === 'string' ? p.image_url : p.image_url?.url;
    return url ? [url] : [];
  });
}

async function decodeImage(url: string): Promise<RecordedRequest['image']> {
  const m = /^data:image\/[a-z+]+;base64,(.+)$/s.exec(url);
  if (!m?.[1]) return null;
  const buf = Buffer.from(m[1], 'base64');
  const img = sharp(buf);
  const meta = await img.metadata();
  const { dominant } = await img.stats();
  return {
    width: meta.width ?? 0,
    height: meta.height ?? 0,
    format: meta.format ?? 'unknown',
    color: colourName(dominant.r, dominant.g, dominant.b),
  };
}

function documentOf(userText: string): string {
  const m = /<document>\n?([\s\S]*?)\n?<\/document>/.exec(userText);
  return m?.[1] ?? userText;
}

const TIMED_LINE = /^\[(\d+(?:\.\d+)?)\]\s*(.*)$/gm;

function summaryAnswer(doc: string): Record<string, unknown> {
  const words = doc.split(/\s+/).filter(Boolean);
  const firstWords = words.slice(0, 6).join(' ');
  const timed = [...doc.matchAll(TIMED_LINE)].map((m) => ({ start: Number(m[1]), text: m[2] ?? '' }));
  // Three chapters at most, spread over the timed lines the client sent.
  const chapters: { start: number; title: string }[] = [];
  if (timed.length > 0) {
    const picks = new Set([0, Math.floor(timed.length / 3), Math.floor((2 * timed.length) / 3)]);
    for (const i of [...picks].sort((a, b) => a - b)) {
      const line = timed[i];
      if (line) chapters.push({ start: line.start, title: `Chapter at ${line.start}: ${line.text.slice(0, 40)}` });
    }
  }
  return {
    title: `About ${words.slice(0, 3).join(' ')}`,
    summary: `A text of ${doc.length} characters that begins "${firstWords}".`,
    keyPoints: [`${words.length} words`, `${timed.length} timed lines`],
    language: 'en',
    chapters,
  };
}

function visionAnswer(image: RecordedRequest['image']): Record<string, unknown> {
  if (!image) {
    return {
      caption: 'no image was received',
      labels: [],
      tags: [],
      text: '',
      safety: { flagged: false, categories: [] },
    };
  }
  const shape = image.width > image.height ? 'landscape' : image.width < image.height ? 'portrait' : 'square';
  return {
    caption: `A ${image.width}x${image.height} picture, mostly ${image.color}.`,
    labels: [
      { name: image.color, score: 0.9 },
      { name: shape, score: 0.7 },
    ],
    tags: [image.format, shape],
    text: '',
    safety: { flagged: false, categories: [] },
  };
}

function errorBody(status: number, message: string): Record<string, unknown> {
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message, type, param: null, code: null } };
}

export async function startOpenAiServer(): Promise<FakeOpenAiServer> {
  const tools = resolveToolPaths();
  const requests: RecordedRequest[] = [];
  const scripts = new Map<string, ScriptStep[]>();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mo-fake-openai-'));
  // Closing must not wait for a keep-alive client or a scripted slow answer.
  const app = Fastify({ bodyLimit: 64 * 1024 * 1024, forceCloseConnections: true });
  await app.register(multipart, { limits: { fileSize: 30 * 1024 * 1024 } });

  const recordOf = new WeakMap<FastifyRequest, RecordedRequest>();
  const nextStep = (model: string | null): ScriptStep | null => {
    const queue = model ? scripts.get(model) : undefined;
    const step = queue?.[0];
    if (!queue || !step) return null;
    const left = (step.times ?? 1) - 1;
    if (left <= 0) queue.shift();
    else queue[0] = { ...step, times: left };
    return step;
  };

  const record = (req: FastifyRequest, model: string | null): RecordedRequest => {
    const rec: RecordedRequest = {
      method: req.method,
      path: req.url,
      model,
      authorization: req.headers.authorization ?? null,
      receivedAt: Date.now(),
      finishedAt: null,
      structured: 'none',
      schemaKind: null,
      image: null,
      document: null,
      audio: null,
      status: 200,
      usage: null,
      closedEarly: false,
    };
    requests.push(rec);
    recordOf.set(req, rec);
    return rec;
  };

  /** Applies a scripted failure or delay; true when the reply was already sent (or the client is gone). */
  const applyStep = async (
    step: ScriptStep | null,
    rec: RecordedRequest,
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<boolean> => {
    if (!step) return false;
    if (step.kind === 'status') {
      rec.status = step.status;
      if (step.retryAfter) void reply.header('retry-after', step.retryAfter);
      await reply.code(step.status).send(errorBody(step.status, step.message ?? `scripted ${step.status}`));
      return true;
    }
    if (step.kind === 'delay') {
      const closed = await new Promise<boolean>((resolve) => {
        if (reply.raw.destroyed || req.raw.socket.destroyed) {
          resolve(true);
          return;
        }
        const timer = setTimeout(() => resolve(false), step.ms);
        reply.raw.once('close', () => {
          clearTimeout(timer);
          rec.finishedAt = Date.now();
          resolve(true);
        });
      });
      if (closed) {
        rec.closedEarly = true;
        rec.status = 0;
        return true;
      }
    }
    return false;
  };

  app.addHook('onResponse', (req, _reply, done) => {
    const rec = recordOf.get(req);
    if (rec) rec.finishedAt = Date.now();
    done();
  });

  app.addHook('onRequest', async (req, reply) => {
    if (!req.headers.authorization?.startsWith('Bearer ')) {
      await reply.code(401).send(errorBody(401, "You didn't provide an API key."));
    }
  });

  app.get('/v1/models', (req, reply) => {
    record(req, null);
    const ids = ['fake-vision', 'fake-chat', 'fake-whisper'];
    return reply.send({
      object: 'list',
      data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake' })),
    });
  });

  app.post('/v1/chat/completions', async (req, reply) => {
    const body = req.body as ChatBody;
    const model = body.model ?? null;
    const rec = record(req, model);
    const messages = body.messages ?? [];
    const tool = body.tools?.find((t) => t.type === 'function');
    const schema = body.response_format?.json_schema?.schema ?? tool?.function.parameters;
    rec.structured =
      body.response_format?.type === 'json_schema'
        ? 'json_schema'
        : tool
          ? 'tool'
          : body.response_format?.type === 'json_object'
            ? 'json_object'
            : 'none';
    const props = schema?.properties ?? {};
    rec.schemaKind = 'caption' in props ? 'vision' : 'summary' in props ? 'summary' : schema ? 'other' : null;

    const urls = messages.flatMap((m) => imageUrls(m.content));
    if (urls[0]) rec.image = await decodeImage(urls[0]);
    const userText = messages
      .filter((m) => m.role === 'user')
      .flatMap((m) => textParts(m.content))
      .join('\n');
    const doc = documentOf(userText);
    rec.document = {
      chars: doc.length,
      firstWords: doc.split(/\s+/).filter(Boolean).slice(0, 6).join(' '),
      timedLines: [...doc.matchAll(TIMED_LINE)].length,
    };

    const step = nextStep(model);
    if (await applyStep(step, rec, req, reply)) return reply;

    const derived = rec.schemaKind === 'vision' ? visionAnswer(rec.image) : summaryAnswer(doc);
    const answer = step?.kind === 'answer' ? { ...derived, ...step.patch } : derived;
    let content = JSON.stringify(answer);
    if (step?.kind === 'malformed') content = content.slice(0, Math.floor(content.length / 2));
    const inputChars = messages.reduce((n, m) => n + textParts(m.content).join('').length, 0);
    const usage: ChatUsage = {
      prompt_tokens: tokens(inputChars) + urls.length * 85,
      completion_tokens: tokens(content.length),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    rec.usage = usage;
    const reported = step?.kind === 'usage' ? step.usage : usage;
    const message =
      rec.structured === 'tool' && tool
        ? {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: `call_${randomUUID()}`,
                type: 'function',
                function: { name: tool.function.name, arguments: content },
              },
            ],
          }
        : { role: 'assistant', content, refusal: null };
    return {
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        { index: 0, message, finish_reason: rec.structured === 'tool' ? 'tool_calls' : 'stop', logprobs: null },
      ],
      ...(reported !== null && { usage: reported }),
    };
  });

  app.post('/v1/audio/transcriptions', async (req, reply) => {
    const fields: Record<string, string> = {};
    let upload: { buf: Buffer; filename: string } | null = null;
    for await (const part of req.parts()) {
      if (part.type === 'file') upload = { buf: await part.toBuffer(), filename: part.filename };
      else fields[part.fieldname] = String(part.value);
    }
    const model = fields.model ?? null;
    const rec = record(req, model);
    if (!upload || upload.buf.length === 0) {
      rec.status = 400;
      return reply.code(400).send(errorBody(400, 'no audio file was uploaded'));
    }
    const file = path.join(tmp, `${randomUUID()}-${path.basename(upload.filename)}`);
    await fs.writeFile(file, upload.buf);
    let durationSec: number;
    try {
      const out = await runTool(tools.ffprobe, ['-v', 'error', '-show_format', '-of', 'json', file], {
        timeoutMs: 30_000,
      });
      durationSec = Number((JSON.parse(out.toString('utf8')) as { format?: { duration?: string } }).format?.duration);
    } catch {
      durationSec = Number.NaN;
    } finally {
      await fs.rm(file, { force: true });
    }
    if (!Number.isFinite(durationSec) || durationSec <= 0) {
      rec.status = 400;
      return reply.code(400).send(errorBody(400, 'the audio file could not be decoded'));
    }
    rec.audio = {
      bytes: upload.buf.length,
      durationSec,
      filename: upload.filename,
      responseFormat: fields.response_format ?? null,
    };

    const step = nextStep(model);
    if (await applyStep(step, rec, req, reply)) return reply;

    const segments: Record<string, unknown>[] = [];
    for (let t = 0, id = 0; t < durationSec; t += 5, id++) {
      segments.push({
        id,
        seek: 0,
        start: t,
        end: Math.min(t + 5, durationSec),
        text: ` words at ${t}s of a ${durationSec.toFixed(1)} second recording.`,
        tokens: [],
        temperature: 0,
        avg_logprob: -0.2,
        compression_ratio: 1,
        no_speech_prob: 0.01,
      });
    }
    const text = segments.map((s) => String(s.text).trim()).join(' ');
    const usage = { input_tokens: Math.ceil(durationSec * 10), output_tokens: segments.length * 4, total_tokens: 0 };
    usage.total_tokens = usage.input_tokens + usage.output_tokens;
    rec.usage = usage;
    if (step?.kind === 'plainText' || fields.response_format === 'json') return { text };
    if (fields.response_format === 'text') return reply.type('text/plain').send(text);
    return {
      task: 'transcribe',
      language: 'english',
      duration: durationSec,
      text,
      segments,
      usage: { type: 'tokens', ...usage },
    };
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('the fake OpenAI server has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}/v1`,
    requests,
    script(model, ...steps) {
      scripts.set(model, [...(scripts.get(model) ?? []), ...steps]);
    },
    reset() {
      scripts.clear();
    },
    async close() {
      await app.close();
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}
