/**
 * The one place that reads process.env. Every variable is parsed and checked here at start-up; a bad value stops
 * the process with a message naming each bad variable. The typed result is passed down, never re-read.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { loadProfiles, thumbnailWidthsProblem, type Profiles } from './lib/instructions.js';
import { DEFAULT_OCR_LANGUAGES, missingLanguagesProblem } from './lib/ocr-languages.js';
import { STEP_NAMES, type StepName } from './lib/types.js';

const list = (raw: string | undefined): string[] =>
  (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const positiveInt = (name: string, fallback: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n <= 0) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a positive whole number, got "${raw}"` });
        return z.NEVER;
      }
      return n;
    });

/**
 * Why `name` cannot be the schema of the job store and checkpoints, or null. Names are quoted wherever they go into
 * SQL (so a keyword such as `user` is a name like any other), and kept to lower-case letters, digits and _ so that
 * the quoted name is the one an administrator types unquoted; PostgreSQL's own schemas are not ours to fill.
 */
export function postgresSchemaProblem(name: string): string | null {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name))
    return 'may use lower-case letters, digits and _ only (at most 63, not starting with a digit)';
  if (name === 'information_schema' || name.startsWith('pg_'))
    return `"${name}" is one of PostgreSQL's own schemas (information_schema, pg_catalog, pg_toast, pg_*): name another`;
  return null;
}

const isHttpUrl = (u: string): boolean => {
  try {
    return ['http:', 'https:'].includes(new URL(u).protocol);
  } catch {
    return false;
  }
};

export const AI_CAPABILITIES = ['vision', 'speech', 'text'] as const;
export type AiCapability = (typeof AI_CAPABILITIES)[number];
/** `openai`: any OpenAI-compatible server through LangChain; `local`: the offline models; `off`: none. */
export const AI_PROVIDER_NAMES = ['openai', 'local', 'off'] as const;
export type AiProvider = (typeof AI_PROVIDER_NAMES)[number];

/**
 * When transcodeVideo makes a web rendition: `required` when the source is not already H.264/AAC MP4 with its index
 * first within VIDEO_MAX_HEIGHT (Immich's policy of the same name); `always`; `never`.
 */
export const VIDEO_TRANSCODE_POLICIES = ['required', 'always', 'never'] as const;
export type VideoTranscodePolicy = (typeof VIDEO_TRANSCODE_POLICIES)[number];
export const X264_PRESETS = [
  'ultrafast',
  'superfast',
  'veryfast',
  'faster',
  'fast',
  'medium',
  'slow',
  'slower',
  'veryslow',
] as const;
/** Chosen by measurement: see docs/benchmarks.md, "Video renditions". */
export const DEFAULT_X264_PRESET = 'veryfast';

export const QUEUE_NAMES = ['light', 'image', 'video', 'document', 'ai'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
/**
 * One task per core on each queue. More oversubscribes the cores (measured: light=4 on two cores cost the photo
 * benchmark about 10% against light=2); fewer leaves cores idle while another queue is empty. The light queue's
 * steps are short and feed the others: half the cores keep them ahead (on two cores, light=1 finished the photo and
 * the mixed memory benchmarks as fast as light=2) and every light thread saved is about 30 MB (docs/reliability.md).
 */
const CORES = Math.max(1, os.availableParallelism());
const DEFAULT_CONCURRENCY: Record<QueueName, number> = {
  light: Math.max(1, Math.floor(CORES / 2)),
  image: CORES,
  video: CORES,
  document: CORES,
  ai: CORES,
};

/**
 * `name=value,name=value` pairs with names from `names` and values `value` accepts (null: not one); `form` describes
 * them for the message. Absent: undefined.
 */
const namedPairs = <N extends string, V>(
  variable: string,
  form: string,
  names: readonly N[],
  value: (raw: string) => V | null,
) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return undefined;
      const out: Partial<Record<N, V>> = {};
      for (const pair of list(raw)) {
        const [name, rawValue] = pair.split('=').map((s) => s.trim());
        const parsed = rawValue === undefined ? null : value(rawValue);
        if (!name || !(names as readonly string[]).includes(name) || parsed === null) {
          ctx.addIssue({ code: 'custom', message: `${variable} takes ${form}; "${pair}" is not one` });
          return z.NEVER;
        }
        out[name as N] = parsed;
      }
      return out;
    });

/** How many tasks of `queue` a worker process runs at once: WORKER_CONCURRENCY's, or one per core for a plugin's. */
export function queueConcurrency(config: Pick<Config, 'workerConcurrency'>, queue: string): number {
  return config.workerConcurrency[queue as QueueName] ?? CORES;
}

/** `name=n,name=n` pairs with names from `names` and positive whole numbers. */
const namedCounts = <N extends string>(variable: string, form: string, names: readonly N[]) =>
  namedPairs(variable, `${form} pairs for ${names.join(', ')}`, names, (v) => {
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 ? n : null;
  }).transform((out) => out ?? {});

const EnvSchema = z.object({
  DATA_DIR: z.string().optional().default('./data'),
  MAX_UPLOAD_BYTES: positiveInt('MAX_UPLOAD_BYTES', 2 * 1024 ** 3),
  MAX_IMAGE_PIXELS: positiveInt('MAX_IMAGE_PIXELS', 250_000_000),
  THUMBNAIL_WIDTHS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const widths = raw ? list(raw).map(Number) : [160, 320, 640];
      if (widths.length === 0 || widths.some((w) => !Number.isInteger(w) || w < 16 || w > 4096)) {
        ctx.addIssue({
          code: 'custom',
          message: `THUMBNAIL_WIDTHS must be whole numbers from 16 to 4096, got "${raw}"`,
        });
        return z.NEVER;
      }
      const unique = [...new Set(widths)].sort((a, b) => a - b);
      const problem = thumbnailWidthsProblem(unique);
      if (problem) {
        ctx.addIssue({ code: 'custom', message: `THUMBNAIL_WIDTHS: ${problem}` });
        return z.NEVER;
      }
      return unique;
    }),
  THUMBNAIL_FORMAT: z.enum(['webp', 'jpeg', 'avif']).optional().default('webp'),
  PROFILES_FILE: z.string().optional(),
  PLUGINS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const specs = list(raw);
      if (specs.length > 32 || specs.some((s) => s.length > 1024)) {
        ctx.addIssue({ code: 'custom', message: 'PLUGINS takes at most 32 module paths or package names' });
        return z.NEVER;
      }
      // Paths are resolved here, once: step threads and every role load the same files whatever their directory.
      return specs.map((s) => (s.startsWith('.') || path.isAbsolute(s) ? path.resolve(s) : s));
    }),
  THUMBNAIL_QUALITY: positiveInt('THUMBNAIL_QUALITY', 80).refine((q) => q <= 100, 'THUMBNAIL_QUALITY must be 1-100'),
  DISABLED_STEPS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const names = list(raw);
      const unknown = names.filter((n) => !(STEP_NAMES as readonly string[]).includes(n));
      if (unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `DISABLED_STEPS has unknown steps: ${unknown.join(', ')} (known: ${STEP_NAMES.join(', ')})`,
        });
        return z.NEVER;
      }
      if (names.includes('validate') || names.includes('extractMetadata')) {
        ctx.addIssue({ code: 'custom', message: 'DISABLED_STEPS cannot disable validate or extractMetadata' });
        return z.NEVER;
      }
      return names as StepName[];
    }),
  PORT: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const n = raw === undefined ? 3000 : Number(raw);
      if (!Number.isInteger(n) || n < 0 || n > 65535) {
        ctx.addIssue({ code: 'custom', message: `PORT must be a port number (0 for any free port), got "${raw}"` });
        return z.NEVER;
      }
      return n;
    }),
  HOST: z.string().optional().default('127.0.0.1'),
  API_TOKEN: z.string().min(16, 'API_TOKEN must have at least 16 characters').optional(),
  UPLOAD_RATE_LIMIT: positiveInt('UPLOAD_RATE_LIMIT', 120),
  SEARCH_RATE_LIMIT: positiveInt('SEARCH_RATE_LIMIT', 120),
  SEARCH_CONCURRENCY: positiveInt('SEARCH_CONCURRENCY', 2),
  SEARCH_TIMEOUT_MS: positiveInt('SEARCH_TIMEOUT_MS', 5000),
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((raw, ctx): boolean | string[] => {
      if (raw === undefined || raw === 'false') return false;
      if (raw === 'true') return true;
      const list = raw.split(',').map((s) => s.trim());
      if (list.some((a) => !/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(a))) {
        ctx.addIssue({
          code: 'custom',
          message: `TRUST_PROXY takes true, false, or proxy addresses/CIDRs; got "${raw}"`,
        });
        return z.NEVER;
      }
      return list;
    }),
  HTTP_HEADERS_TIMEOUT_MS: positiveInt('HTTP_HEADERS_TIMEOUT_MS', 30_000),
  HTTP_BODY_TIMEOUT_MS: positiveInt('HTTP_BODY_TIMEOUT_MS', 60_000),
  HTTP_BODY_MIN_BYTES_PER_SEC: positiveInt('HTTP_BODY_MIN_BYTES_PER_SEC', 1000),
  // Unset: derived from MAX_UPLOAD_BYTES below.
  HTTP_REQUEST_TIMEOUT_MS: positiveInt('HTTP_REQUEST_TIMEOUT_MS', 0),
  SSE_MAX_STREAMS: positiveInt('SSE_MAX_STREAMS', 1000),
  SSE_MAX_AGE_MS: positiveInt('SSE_MAX_AGE_MS', 30 * 60_000),
  WEBHOOK_SECRET: z.string().min(16, 'WEBHOOK_SECRET must have at least 16 characters').optional(),
  WEBHOOK_TIMEOUT_MS: positiveInt('WEBHOOK_TIMEOUT_MS', 10_000),
  WEBHOOK_ATTEMPTS: positiveInt('WEBHOOK_ATTEMPTS', 6),
  WEBHOOK_HOST_CONCURRENCY: positiveInt('WEBHOOK_HOST_CONCURRENCY', 2),
  WEBHOOK_BREAKER_FAILURES: positiveInt('WEBHOOK_BREAKER_FAILURES', 5),
  WEBHOOK_BREAKER_COOLDOWN_MS: positiveInt('WEBHOOK_BREAKER_COOLDOWN_MS', 30_000),
  WEBHOOK_ALLOW_PRIVATE: z
    .enum(['true', 'false'], { message: 'WEBHOOK_ALLOW_PRIVATE must be true or false' })
    .optional()
    .default('false'),
  INPUT_ROOTS: z.string().optional(),
  REDIS_URL: z
    .string()
    .optional()
    .refine((u) => u === undefined || /^rediss?:\/\//.test(u), 'REDIS_URL must start with redis:// or rediss://'),
  DATABASE_URL: z
    .string()
    .optional()
    .refine(
      (u) => u === undefined || /^postgres(ql)?:\/\//.test(u),
      'DATABASE_URL must start with postgres:// or postgresql://',
    ),
  DATABASE_SCHEMA: z
    .string()
    .optional()
    .superRefine((s, ctx) => {
      const problem = s === undefined ? null : postgresSchemaProblem(s);
      if (problem) ctx.addIssue({ code: 'custom', message: `DATABASE_SCHEMA ${problem}` });
    }),
  QUEUE_PREFIX: z
    .string()
    .optional()
    .default('mo')
    .refine((p) => /^[A-Za-z0-9_-]{1,40}$/.test(p), 'QUEUE_PREFIX may use letters, digits, _ and - only'),
  JOB_CONCURRENCY: positiveInt('JOB_CONCURRENCY', 20),
  WORKER_CONCURRENCY: namedCounts('WORKER_CONCURRENCY', 'queue=count', QUEUE_NAMES),
  STEP_TIMEOUTS: namedCounts('STEP_TIMEOUTS', 'step=milliseconds', STEP_NAMES),
  LOCK_DURATION_MS: positiveInt('LOCK_DURATION_MS', 30_000),
  STALLED_INTERVAL_MS: positiveInt('STALLED_INTERVAL_MS', 30_000),
  SHUTDOWN_TIMEOUT_MS: positiveInt('SHUTDOWN_TIMEOUT_MS', 15_000),
  REVIEW_TIMEOUT: z
    .string()
    .regex(
      /^(\d{1,10}):(approve|reject)$/,
      'REVIEW_TIMEOUT: milliseconds:approve or milliseconds:reject, e.g. 86400000:reject',
    )
    .optional(),
  RETRY_BACKOFF_MS: positiveInt('RETRY_BACKOFF_MS', 1000),
  SWEEP_INTERVAL_MS: positiveInt('SWEEP_INTERVAL_MS', 60_000),
  STEP_THREAD_IDLE_MS: positiveInt('STEP_THREAD_IDLE_MS', 60_000),
  WARM_STEP_THREADS: z
    .enum(['true', 'false'], { message: 'WARM_STEP_THREADS must be true or false' })
    .optional()
    .default('true'),
  STEP_THREADS: positiveInt('STEP_THREADS', CORES),
  // The offline detector holds about 200 MB in each thread that runs it: half the cores, at least one.
  VISION_THREADS: positiveInt('VISION_THREADS', Math.max(1, Math.floor(CORES / 2))),
  STEP_MEMORY_MB: positiveInt('STEP_MEMORY_MB', 1024).refine((n) => n >= 128, 'STEP_MEMORY_MB must be at least 128'),
  MAX_TEXT_CHARS: positiveInt('MAX_TEXT_CHARS', 5_000_000),
  MAX_PDF_PAGES: positiveInt('MAX_PDF_PAGES', 5000),
  OCR_LANGUAGES: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const codes = raw === undefined ? DEFAULT_OCR_LANGUAGES : [...new Set(list(raw.replaceAll('+', ',')))];
      const problem = codes.length > 8 ? 'at most 8 languages' : missingLanguagesProblem(codes);
      if (problem) {
        ctx.addIssue({ code: 'custom', message: `OCR_LANGUAGES: ${problem}` });
        return z.NEVER;
      }
      return codes;
    }),
  MAX_OCR_PAGES: positiveInt('MAX_OCR_PAGES', 100),
  DUPLICATES: z.enum(['mark', 'skip'], { message: 'DUPLICATES must be mark or skip' }).optional().default('mark'),
  VIDEO_TRANSCODE: z
    .enum(VIDEO_TRANSCODE_POLICIES, {
      message: `VIDEO_TRANSCODE must be one of ${VIDEO_TRANSCODE_POLICIES.join(', ')}`,
    })
    .optional()
    .default('required'),
  VIDEO_MAX_HEIGHT: positiveInt('VIDEO_MAX_HEIGHT', 720).refine(
    (n) => n >= 144 && n <= 4320,
    'VIDEO_MAX_HEIGHT must be from 144 to 4320',
  ),
  VIDEO_CRF: positiveInt('VIDEO_CRF', 23).refine((n) => n <= 51, 'VIDEO_CRF must be from 1 to 51'),
  VIDEO_PRESET: z
    .enum(X264_PRESETS, { message: `VIDEO_PRESET must be one of ${X264_PRESETS.join(', ')}` })
    .optional()
    .default(DEFAULT_X264_PRESET),
  FFMPEG_PATH: z.string().optional(),
  FFPROBE_PATH: z.string().optional(),
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: z
    .string()
    .optional()
    .refine((u) => u === undefined || isHttpUrl(u), 'OPENAI_BASE_URL must be an http:// or https:// URL'),
  VISION_MODEL: z.string().optional().default('gpt-4o-mini'),
  CHAT_MODEL: z.string().optional().default('gpt-4o-mini'),
  TRANSCRIBE_MODEL: z.string().optional().default('whisper-1'),
  AI_PROVIDERS: namedPairs(
    'AI_PROVIDERS',
    `capability=provider pairs (${AI_CAPABILITIES.join(', ')} = ${AI_PROVIDER_NAMES.join(' or ')})`,
    AI_CAPABILITIES,
    (v) => ((AI_PROVIDER_NAMES as readonly string[]).includes(v) ? (v as AiProvider) : null),
  ),
  AI_TIMEOUT_MS: positiveInt('AI_TIMEOUT_MS', 120_000),
  AI_MAX_CONCURRENCY: positiveInt('AI_MAX_CONCURRENCY', 4),
  AI_CONTEXT_CHARS: positiveInt('AI_CONTEXT_CHARS', 24_000).refine(
    (n) => n >= 1000,
    'AI_CONTEXT_CHARS must be at least 1000',
  ),
  TRANSCRIBE_CHUNK_SEC: positiveInt('TRANSCRIBE_CHUNK_SEC', 600).refine(
    (n) => n >= 10,
    'TRANSCRIBE_CHUNK_SEC must be at least 10',
  ),
  TRANSCRIBE_PREFER_SUBTITLES: z
    .enum(['true', 'false'], { message: 'TRANSCRIBE_PREFER_SUBTITLES must be true or false' })
    .optional()
    .default('true'),
  FACES: z.enum(['on', 'off'], { message: 'FACES must be on or off' }).optional().default('on'),
  VISION_MIN_SCORE: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const n = raw === undefined ? 0.3 : Number(raw);
      if (!Number.isFinite(n) || n < 0 || n > 1) {
        ctx.addIssue({ code: 'custom', message: `VISION_MIN_SCORE must be a number from 0 to 1, got "${raw}"` });
        return z.NEVER;
      }
      return n;
    }),
  POCKETSPHINX_PATH: z.string().optional(),
  PATH: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
});

/** Every variable this project reads (PATH is the system's own). */
export const CONFIG_VARIABLES = Object.keys(EnvSchema.shape).filter((name) => name !== 'PATH');

export interface Config {
  dataDir: string;
  /** The SQLite file of jobs and checkpoints when `database` is null. */
  dbPath: string;
  /** PostgreSQL for jobs and checkpoints (DATABASE_URL, DATABASE_SCHEMA); null: the SQLite file in DATA_DIR. */
  database: { url: string; schema: string | undefined } | null;
  uploadsDir: string;
  artifactsDir: string;
  maxFileBytes: number;
  maxImagePixels: number;
  thumbnails: { widths: number[]; format: 'webp' | 'jpeg' | 'avif'; quality: number };
  disabledSteps: StepName[];
  /** DUPLICATES: `skip` ends a job whose bytes an earlier completed job of its owner had, sharing its results. */
  duplicates: 'mark' | 'skip';
  ffmpegPath: string | undefined;
  ffprobePath: string | undefined;
  /** transcodeVideo's web rendition: the policy, the shorter side's ceiling, x264's quality and preset. */
  video: { transcode: VideoTranscodePolicy; maxHeight: number; crf: number; preset: (typeof X264_PRESETS)[number] };
  logLevel: string;
  port: number;
  host: string;
  /** When set, write routes and admin pages need `Authorization: Bearer <token>`. */
  apiToken: string | undefined;
  /** Uploads (POST /jobs) per minute and API token (or client address when no token is configured). */
  uploadRateLimit: number;
  /** Searches (GET /jobs?q=) per minute and client address. */
  searchRateLimit: number;
  /**
   * Searches one process runs at once (SQLite: threads; PostgreSQL: connections of a pool of their own; four times as
   * many wait, more are refused), and how long one may run.
   */
  search: { concurrency: number; timeoutMs: number };
  /** Which proxies' X-Forwarded-For to believe (Fastify's trustProxy); false: the peer address is the client. */
  trustProxy: boolean | string[];
  /** How long a client may take over its request, and how fast a body must keep arriving (see requestLimits). */
  http: HttpLimits;
  /** Event streams (GET /jobs/:id/events) one API process keeps open at once; more get 503. */
  sseMaxStreams: number;
  /** A stream is closed after this long (the client reconnects with Last-Event-ID and loses nothing). */
  sseMaxAgeMs: number;
  /** HMAC key of webhook signatures; unset: a key generated once into DATA_DIR/webhook-secret. */
  webhookSecret: string | undefined;
  /** Webhooks may reach loopback, private and link-local addresses (off: only public ones). */
  webhookAllowPrivate: boolean;
  webhookTimeoutMs: number;
  webhookAttempts: number;
  /** Deliveries one process sends to one receiver host (URL origin) at once; the rest wait in the queue. */
  webhookHostConcurrency: number;
  /** Failures in a row (no answer, 5xx, 429) that open a host's circuit, and how long it stays open. */
  webhookBreakerFailures: number;
  webhookBreakerCooldownMs: number;
  /** Folders producers may reference by path; the upload folder is always allowed. */
  inputRoots: string[];
  /** Unset: use redis://127.0.0.1:6379, or start a private redis-server when nothing answers there. */
  redisUrl: string | undefined;
  queuePrefix: string;
  jobConcurrency: number;
  workerConcurrency: Record<QueueName, number>;
  stepTimeouts: Partial<Record<StepName, number>>;
  lockDurationMs: number;
  stalledIntervalMs: number;
  shutdownTimeoutMs: number;
  /** A review nobody decides within `ms` is decided so; null: jobs wait for their review as long as it takes. */
  reviewTimeout: { ms: number; decision: 'approve' | 'reject' } | null;
  retryBackoffMs: number;
  /**
   * How often an orchestrator looks for jobs whose run stopped with nothing left to resume it (and for reviews that
   * are due); a job must also have been unchanged this long.
   */
  sweepIntervalMs: number;
  /** JavaScript heap ceiling of one step thread; a step past it fails with RESOURCE_LIMIT. */
  stepMemoryMb: number;
  /** A step thread idle this long is let go (the light queue keeps one). */
  stepThreadIdleMs: number;
  /** Modules of plugin steps (PLUGINS): absolute paths or package names, loaded at start-up (src/plugins). */
  plugins: string[];
  /** Named instruction presets a job may ask for with `profile` (PROFILES_FILE); empty without one. */
  profiles: Profiles;
  /** Workers boot one thread per pool at start-up, with its steps' libraries and models loaded (see warmSteps). */
  warmStepThreads: boolean;
  /** Threads the CPU-bound queues (image, video, document, offline ai) of a worker process share. */
  stepThreads: number;
  /** Threads that run the offline vision detector (analyzeImage with AI_PROVIDERS vision=local). */
  visionThreads: number;
  /** Most characters extractText keeps from a document; the rest is cut (and the result says so). */
  maxTextChars: number;
  /** Most pages a PDF may have (validate refuses more with TOO_LARGE); a page tree of a few bytes can claim millions. */
  maxPdfPages: number;
  /** Text read from pixels (lib/ocr.ts): its languages, and the most PDF pages one document has read by OCR. */
  ocr: { languages: string[]; maxPages: number };
  ai: AiConfig;
}

export interface HttpLimits {
  /** The whole head of a request (request line and headers) must arrive within this. */
  headersTimeoutMs: number;
  /** A body may fall behind the pace of `bodyMinBytesPerSec` (or pause) by at most this much. */
  bodyTimeoutMs: number;
  bodyMinBytesPerSec: number;
  /** The whole request, body included, must arrive within this (a ceiling far above a slow upload's time). */
  requestTimeoutMs: number;
}

/** The longest a request may take unless HTTP_REQUEST_TIMEOUT_MS says: MAX_UPLOAD_BYTES at 64 KiB/s, at least 1 h. */
function defaultRequestTimeoutMs(maxUploadBytes: number): number {
  return Math.max(3_600_000, Math.ceil(maxUploadBytes / 65_536) * 1000);
}

export interface AiConfig {
  /** Which implementation serves each capability. */
  providers: Record<AiCapability, AiProvider>;
  openai: {
    /** Never logged or shown. */
    apiKey: string | undefined;
    baseURL: string | undefined;
    visionModel: string;
    chatModel: string;
    transcribeModel: string;
  };
  timeoutMs: number;
  /** Model requests at once per process (map-reduce chunks, audio chunks), and the ai queue's default size. */
  maxConcurrency: number;
  /** Longest text sent to the chat model in one request; longer ones are summarized map-reduce. */
  contextChars: number;
  /** Longest audio sent to the speech model in one request; longer audio is cut into chunks. */
  transcribeChunkSec: number;
  /** A text subtitle track is used as the transcript before any speech model. */
  preferSubtitles: boolean;
  /** Offline detector labels under this score are dropped. */
  visionMinScore: number;
  /** Faces the vision model finds are described, kept with a crop and placed in people (FACES=on). */
  faces: boolean;
  /** `pocketsphinx_continuous`: POCKETSPHINX_PATH, else looked up on PATH by the speech model. */
  pocketsphinxPath: string | undefined;
  searchPath: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** What the command line reads to choose between a service's HTTP API and Redis and the job store (src/cli/remote.ts). */
export interface RemoteSettings {
  /** --url's default: MEDIA_ORCHESTRATOR_URL, `none` included. */
  url: string | undefined;
  /** Where a local service would answer. */
  port: number;
  token: string | undefined;
  /** One of REDIS_URL, QUEUE_PREFIX, DATA_DIR, DATABASE_URL is set: this terminal chose which state it means. */
  pointsAtState: boolean;
}

/**
 * The command line's choice of transport, read without parsing the rest of the configuration (`status` through the
 * API needs none of it).
 */
export function remoteSettings(env: Record<string, string | undefined> = process.env): RemoteSettings {
  const port = Number(env.PORT ?? 3000);
  return {
    url: env.MEDIA_ORCHESTRATOR_URL || undefined,
    port: Number.isInteger(port) && port > 0 && port < 65536 ? port : 3000,
    token: env.API_TOKEN || undefined,
    pointsAtState: ['REDIS_URL', 'QUEUE_PREFIX', 'DATA_DIR', 'DATABASE_URL'].some((v) => !!env[v]),
  };
}

/** Parses an environment (process.env by default) into a Config, or throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty value (`FFMPEG_PATH=` copied from .env.example) means "use the default", not "the empty string".
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const parsed = EnvSchema.safeParse(given);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = i.path.join('.');
        return i.message.startsWith(name) ? i.message : `${name}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.DATA_DIR);
  let profiles: Profiles = {};
  if (e.PROFILES_FILE) {
    try {
      profiles = loadProfiles(e.PROFILES_FILE);
    } catch (err) {
      throw new ConfigError([`PROFILES_FILE (${e.PROFILES_FILE}): ${(err as Error).message}`]);
    }
  }
  const providerConfigured = e.OPENAI_API_KEY !== undefined || e.OPENAI_BASE_URL !== undefined;
  const providers: Record<AiCapability, AiProvider> = {
    vision: providerConfigured ? 'openai' : 'local',
    speech: providerConfigured ? 'openai' : 'local',
    text: providerConfigured ? 'openai' : 'local',
    ...e.AI_PROVIDERS,
  };
  const needsOpenAi = AI_CAPABILITIES.filter((c) => providers[c] === 'openai');
  if (needsOpenAi.length > 0 && !providerConfigured) {
    throw new ConfigError([
      `AI_PROVIDERS: ${needsOpenAi.join(', ')} use openai, but neither OPENAI_API_KEY nor OPENAI_BASE_URL is set`,
    ]);
  }
  const http: HttpLimits = {
    headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    bodyTimeoutMs: e.HTTP_BODY_TIMEOUT_MS,
    bodyMinBytesPerSec: e.HTTP_BODY_MIN_BYTES_PER_SEC,
    requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS || defaultRequestTimeoutMs(e.MAX_UPLOAD_BYTES),
  };
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    throw new ConfigError([
      `HTTP_HEADERS_TIMEOUT_MS (${http.headersTimeoutMs}) may not be longer than HTTP_REQUEST_TIMEOUT_MS (${http.requestTimeoutMs})`,
    ]);
  }
  // Work that waits on HTTP is sized by AI_MAX_CONCURRENCY, not by cores.
  const aiQueue = needsOpenAi.length > 0 ? e.AI_MAX_CONCURRENCY : DEFAULT_CONCURRENCY.ai;
  return {
    dataDir,
    dbPath: path.join(dataDir, 'orchestrator.db'),
    database: e.DATABASE_URL ? { url: e.DATABASE_URL, schema: e.DATABASE_SCHEMA } : null,
    uploadsDir: path.join(dataDir, 'uploads'),
    artifactsDir: path.join(dataDir, 'artifacts'),
    maxFileBytes: e.MAX_UPLOAD_BYTES,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    thumbnails: { widths: e.THUMBNAIL_WIDTHS, format: e.THUMBNAIL_FORMAT, quality: e.THUMBNAIL_QUALITY },
    disabledSteps: e.DISABLED_STEPS,
    duplicates: e.DUPLICATES,
    ffmpegPath: e.FFMPEG_PATH,
    ffprobePath: e.FFPROBE_PATH,
    video: { transcode: e.VIDEO_TRANSCODE, maxHeight: e.VIDEO_MAX_HEIGHT, crf: e.VIDEO_CRF, preset: e.VIDEO_PRESET },
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    host: e.HOST,
    apiToken: e.API_TOKEN,
    uploadRateLimit: e.UPLOAD_RATE_LIMIT,
    searchRateLimit: e.SEARCH_RATE_LIMIT,
    search: { concurrency: e.SEARCH_CONCURRENCY, timeoutMs: e.SEARCH_TIMEOUT_MS },
    trustProxy: e.TRUST_PROXY,
    http,
    sseMaxStreams: e.SSE_MAX_STREAMS,
    sseMaxAgeMs: e.SSE_MAX_AGE_MS,
    webhookSecret: e.WEBHOOK_SECRET,
    webhookAllowPrivate: e.WEBHOOK_ALLOW_PRIVATE === 'true',
    webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
    webhookAttempts: e.WEBHOOK_ATTEMPTS,
    webhookHostConcurrency: e.WEBHOOK_HOST_CONCURRENCY,
    webhookBreakerFailures: e.WEBHOOK_BREAKER_FAILURES,
    webhookBreakerCooldownMs: e.WEBHOOK_BREAKER_COOLDOWN_MS,
    inputRoots: list(e.INPUT_ROOTS).map((r) => path.resolve(r)),
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    jobConcurrency: e.JOB_CONCURRENCY,
    workerConcurrency: { ...DEFAULT_CONCURRENCY, ai: aiQueue, ...e.WORKER_CONCURRENCY },
    stepTimeouts: e.STEP_TIMEOUTS,
    lockDurationMs: e.LOCK_DURATION_MS,
    stalledIntervalMs: e.STALLED_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    reviewTimeout: e.REVIEW_TIMEOUT
      ? {
          ms: Number(e.REVIEW_TIMEOUT.split(':')[0]),
          decision: e.REVIEW_TIMEOUT.split(':')[1] as 'approve' | 'reject',
        }
      : null,
    retryBackoffMs: e.RETRY_BACKOFF_MS,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    stepMemoryMb: e.STEP_MEMORY_MB,
    stepThreadIdleMs: e.STEP_THREAD_IDLE_MS,
    profiles,
    plugins: e.PLUGINS,
    warmStepThreads: e.WARM_STEP_THREADS === 'true',
    stepThreads: e.STEP_THREADS,
    visionThreads: e.VISION_THREADS,
    maxTextChars: e.MAX_TEXT_CHARS,
    maxPdfPages: e.MAX_PDF_PAGES,
    ocr: { languages: e.OCR_LANGUAGES, maxPages: e.MAX_OCR_PAGES },
    ai: {
      providers,
      openai: {
        apiKey: e.OPENAI_API_KEY,
        baseURL: e.OPENAI_BASE_URL,
        visionModel: e.VISION_MODEL,
        chatModel: e.CHAT_MODEL,
        transcribeModel: e.TRANSCRIBE_MODEL,
      },
      timeoutMs: e.AI_TIMEOUT_MS,
      maxConcurrency: e.AI_MAX_CONCURRENCY,
      contextChars: e.AI_CONTEXT_CHARS,
      transcribeChunkSec: e.TRANSCRIBE_CHUNK_SEC,
      preferSubtitles: e.TRANSCRIBE_PREFER_SUBTITLES === 'true',
      visionMinScore: e.VISION_MIN_SCORE,
      faces: e.FACES === 'on',
      pocketsphinxPath: e.POCKETSPHINX_PATH,
      searchPath: e.PATH ?? '',
    },
  };
}
