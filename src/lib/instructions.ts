/**
 * Per-job instructions: what a producer may choose for one job (which optional steps to leave out, the thumbnails'
 * sizes, format and fit, whether to transcribe, the summary's length and language), alone or on top of a named
 * profile defined in PROFILES_FILE. The schema is closed and every value bounded: an unknown key or a value out of
 * range refuses the job with INVALID_INPUT naming it. Steps receive the result as typed options (StepInput's
 * `instructions`), never the producer's object.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { missingLanguagesProblem, OCR_LANGUAGE } from './ocr-languages.js';
import { PLUGIN_STEP_NAME, STEP_NAMES } from './step-names.js';

/** Steps a job may leave out: those whose failure does not fail the job (see the step policy). */
export const SKIPPABLE_STEPS = [
  'analyzeImage',
  'posterFrame',
  'renderPreview',
  'extractAudio',
  'transcribe',
  'summarize',
  'waveform',
  'transcodeVideo',
  'storyboard',
] as const;

export const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Thumbnails are `width` wide (never enlarged); very tall sources are capped at twice that in height. */
export const THUMBNAIL_MAX_ASPECT = 2;

/**
 * What one job's thumbnails may cost, whatever their format and fit: the widths together, and the pixels the largest
 * thumbnails they can make hold (a width w makes at most w x 2w). The halving ladder from 4096 (4096, 2048 … 128)
 * fits; two of 4096, or six near it (121 s of AVIF at quality 100), do not.
 */
export const THUMBNAIL_LIMITS = { widthSum: 8192, pixels: 48 * 2 ** 20 };

/** Why these widths cost more than one job may ask for, or null when they do not. */
export function thumbnailWidthsProblem(widths: readonly number[]): string | null {
  const sum = widths.reduce((n, w) => n + w, 0);
  if (sum > THUMBNAIL_LIMITS.widthSum)
    return `the widths add up to ${sum} pixels; at most ${THUMBNAIL_LIMITS.widthSum} together`;
  const pixels = widths.reduce((n, w) => n + w * w * THUMBNAIL_MAX_ASPECT, 0);
  if (pixels > THUMBNAIL_LIMITS.pixels)
    return `thumbnails this wide can hold ${pixels} pixels; at most ${THUMBNAIL_LIMITS.pixels} together`;
  return null;
}

/**
 * A step `skip` may name: a built-in one that may be left out, or a plugin step's name (whether the service has that
 * plugin is checked when the job runs: src/graph/workflow.ts).
 */
const SkippableStep = z
  .string()
  .max(48)
  .refine(
    (s) =>
      (SKIPPABLE_STEPS as readonly string[]).includes(s) ||
      (PLUGIN_STEP_NAME.test(s) && !(STEP_NAMES as readonly string[]).includes(s)),
    { message: `skip: steps that may be left out are ${SKIPPABLE_STEPS.join(', ')} and plugin steps` },
  );

/** The bounds of `steps` (plugin options): how many plugins, and the size of each one's options as JSON. */
export const PLUGIN_OPTIONS_LIMITS = { steps: 32, bytes: 4096 } as const;

const PluginOptions = z.unknown().superRefine((value, ctx) => {
  const json = JSON.stringify(value);
  if (json === undefined || json.length > PLUGIN_OPTIONS_LIMITS.bytes)
    ctx.addIssue({ code: 'custom', message: `options are JSON of at most ${PLUGIN_OPTIONS_LIMITS.bytes} characters` });
});

export const InstructionsSchema = z.strictObject({
  skip: z.array(SkippableStep).max(64).optional(),
  /** Options of plugin steps, by step name; each plugin's own schema checks its entry when the job runs. */
  steps: z
    .record(z.string().regex(PLUGIN_STEP_NAME, 'steps: plugin step names'), PluginOptions)
    .refine((s) => Object.keys(s).length <= PLUGIN_OPTIONS_LIMITS.steps, {
      message: `steps: at most ${PLUGIN_OPTIONS_LIMITS.steps} plugin steps`,
    })
    .optional(),
  thumbnails: z
    .strictObject({
      widths: z
        .array(z.number().int().min(16).max(4096))
        .min(1)
        .max(6)
        .superRefine((widths, ctx) => {
          const problem = thumbnailWidthsProblem(widths);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
      format: z.enum(['webp', 'jpeg', 'avif']).optional(),
      quality: z.number().int().min(1).max(100).optional(),
      /** `inside`: the whole picture within width x width; `cover`: a square crop of width x width. */
      fit: z.enum(['inside', 'cover']).optional(),
    })
    .optional(),
  /** false: no transcript (nor its summary) for video and audio. */
  transcribe: z.boolean().optional(),
  /**
   * When the job waits for a person before it finishes: `always`; `flagged` (the default): when the vision model
   * flags the picture, or it carries one of `labels`; `never`.
   */
  review: z
    .strictObject({
      when: z.enum(['always', 'flagged', 'never']).optional(),
      labels: z.array(z.string().min(1).max(64)).max(50).optional(),
    })
    .optional(),
  /** false: the picture's faces are counted and boxed, but not described, kept or placed in people. */
  faces: z.boolean().optional(),
  /**
   * Text read from pixels (scanned PDF pages, text in pictures): `false` reads none; `true` also reads pictures a
   * vision provider has described; `{ languages }` reads in these languages instead of OCR_LANGUAGES.
   */
  ocr: z
    .union([
      z.boolean(),
      z.strictObject({
        languages: z
          .array(z.string().regex(OCR_LANGUAGE, 'ocr.languages: tesseract language codes such as eng, deu, chi_sim'))
          .min(1)
          .max(8)
          .superRefine((codes, ctx) => {
            const problem = missingLanguagesProblem(codes);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
      }),
    ])
    .optional(),
  /**
   * The web rendition of a video: `transcode` overrides VIDEO_TRANSCODE, `maxHeight` VIDEO_MAX_HEIGHT (the shorter
   * side's ceiling, never enlarged), `hls` adds an HLS playlist of fMP4 segments.
   */
  video: z
    .strictObject({
      transcode: z.enum(['required', 'always', 'never']).optional(),
      maxHeight: z.number().int().min(144).max(2160).optional(),
      hls: z.boolean().optional(),
    })
    .optional(),
  summary: z
    .strictObject({
      length: z.enum(['short', 'medium', 'long']).optional(),
      /** The summary's language, as a BCP 47 tag (`en`, `pt-BR`); for language models (the offline one extracts). */
      language: z
        .string()
        .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$/, 'summary.language: a language tag such as en or pt-BR')
        .optional(),
    })
    .optional(),
});

export type Instructions = z.infer<typeof InstructionsSchema>;

/** Named presets: PROFILES_FILE holds `{ "<name>": <instructions>, ... }`. */
export const ProfilesSchema = z
  .record(z.string().regex(PROFILE_NAME, 'a profile name: a-z, 0-9, _ and -, at most 64'), InstructionsSchema)
  .refine((p) => Object.keys(p).length <= 100, 'at most 100 profiles');

export type Profiles = z.infer<typeof ProfilesSchema>;

/** Reads and validates PROFILES_FILE (JSON, or YAML by its extension); throws with the offending key named. */
export function loadProfiles(file: string): Profiles {
  const text = fs.readFileSync(file, 'utf8');
  const raw: unknown = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  const parsed = ProfilesSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new Error(describeIssues(parsed.error.issues));
  return parsed.data;
}

/** Zod's issues as one line, each with its path: "thumbnails.widths.0: too small; colour: unknown key". */
export function describeIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => {
      const where = i.path.join('.');
      const keys = i.code === 'unrecognized_keys' ? ` (${i.keys.join(', ')})` : '';
      return `${where || 'instructions'}: ${i.message}${keys}`;
    })
    .join('; ');
}

/**
 * The instructions a job runs with: its profile's, with the job's own on top (field by field, a job's `skip`
 * replacing the profile's). Null when neither says anything. Throws for a profile `profiles` does not define.
 */
export function effectiveInstructions(
  own: Instructions | undefined,
  profile: string | undefined,
  profiles: Profiles,
): Instructions | null {
  let base: Instructions = {};
  if (profile !== undefined) {
    const preset = Object.hasOwn(profiles, profile) ? profiles[profile] : undefined;
    if (!preset) throw new UnknownProfile(profile, profiles);
    base = preset;
  }
  const mine = own ?? {};
  const merged: Instructions = {
    ...base,
    ...mine,
    ...((base.thumbnails || mine.thumbnails) && { thumbnails: { ...base.thumbnails, ...mine.thumbnails } }),
    ...((base.summary || mine.summary) && { summary: { ...base.summary, ...mine.summary } }),
    ...((base.review || mine.review) && { review: { ...base.review, ...mine.review } }),
    ...((base.video || mine.video) && { video: { ...base.video, ...mine.video } }),
    ...((base.steps || mine.steps) && { steps: { ...base.steps, ...mine.steps } }),
  };
  return Object.keys(merged).length > 0 ? merged : null;
}

export class UnknownProfile extends Error {
  constructor(name: string, profiles: Profiles) {
    const known = Object.keys(profiles);
    super(
      `profile ${JSON.stringify(name)} is not defined${known.length ? ` (PROFILES_FILE has ${known.join(', ')})` : ' (no PROFILES_FILE is set)'}`,
    );
    this.name = 'UnknownProfile';
  }
}

/** Why `step` does not run for these instructions, or null when it runs. */
export function skippedByInstructions(step: string, instructions: Instructions | null | undefined): string | null {
  if (!instructions) return null;
  if ((instructions.skip as readonly string[] | undefined)?.includes(step)) return "left out by the job's instructions";
  if (step === 'transcribe' && instructions.transcribe === false)
    return "left out by the job's instructions (transcribe: false)";
  return null;
}
