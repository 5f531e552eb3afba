/**
 * The one place that reads process.env. Every variable is parsed and checked here at start-up; a bad value stops
 * the process with a message naming each bad variable. The typed result is passed down, never re-read.
 */
import path from 'node:path';
import { z } from 'zod';
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
      return [...new Set(widths)].sort((a, b) => a - b);
    }),
  THUMBNAIL_FORMAT: z.enum(['webp', 'jpeg', 'avif']).optional().default('webp'),
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
  FFMPEG_PATH: z.string().optional(),
  FFPROBE_PATH: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
});

export interface Config {
  dataDir: string;
  dbPath: string;
  uploadsDir: string;
  artifactsDir: string;
  maxFileBytes: number;
  maxImagePixels: number;
  thumbnails: { widths: number[]; format: 'webp' | 'jpeg' | 'avif'; quality: number };
  disabledSteps: StepName[];
  ffmpegPath: string | undefined;
  ffprobePath: string | undefined;
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
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
  return {
    dataDir,
    dbPath: path.join(dataDir, 'orchestrator.db'),
    uploadsDir: path.join(dataDir, 'uploads'),
    artifactsDir: path.join(dataDir, 'artifacts'),
    maxFileBytes: e.MAX_UPLOAD_BYTES,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    thumbnails: { widths: e.THUMBNAIL_WIDTHS, format: e.THUMBNAIL_FORMAT, quality: e.THUMBNAIL_QUALITY },
    disabledSteps: e.DISABLED_STEPS,
    ffmpegPath: e.FFMPEG_PATH,
    ffprobePath: e.FFPROBE_PATH,
    logLevel: e.LOG_LEVEL,
  };
}
