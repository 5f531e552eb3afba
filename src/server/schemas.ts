/** The HTTP contract as zod schemas: validated on the way in, serialized on the way out, published as OpenAPI. */
import { z } from 'zod';
import { ERROR_CODES, FILE_TYPES, JOB_STATUSES, PLUGIN_ERROR_CODE, WARNING_CODES } from '../lib/types.js';
import { InstructionsSchema } from '../lib/instructions.js';
import { JOB_ID_PATTERN, JobRequestSchema } from '../lib/job-input.js';

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().describe('BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, CONFLICT, PAYLOAD_TOO_LARGE, …'),
      message: z.string(),
    }),
  })
  .describe('Every error answer');

const StepRecord = z.object({
  status: z.enum(['pending', 'running', 'succeeded', 'failed', 'skipped']),
  attempts: z.number().int(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  durationMs: z.number().optional(),
  reason: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string(), step: z.string().nullable() }).optional(),
  progress: z.number().optional().describe('While the step runs (transcodeVideo): how far it is, 0-100'),
});

const WaveformResult = z
  .object({
    name: z.string(),
    url: z.string(),
    bytes: z.number().int(),
    pngUrl: z.string(),
    channels: z.number().int(),
    sampleRate: z.number().int(),
    samplesPerPixel: z.number().int(),
    length: z.number().int(),
    durationSec: z.number(),
  })
  .describe('waveform.json (BBC audiowaveform format, version 2, 8 bits; peaks.js reads it) and a PNG of it');

const LoudnessResult = z
  .object({
    integratedLufs: z.number().nullable().describe('EBU R128 integrated loudness; null for digital silence'),
    loudnessRangeLu: z.number().nullable(),
    truePeakDbtp: z.number().nullable(),
    silenceShare: z.number().min(0).max(1),
    silenceSec: z.number(),
    silence: z.object({ method: z.literal('silencedetect'), thresholdDb: z.number(), minDurationSec: z.number() }),
  })
  .describe("ffmpeg's ebur128 (true peak) and silencedetect over the first audio stream");

const Duplicate = z.object({
  jobId: z.string(),
  kind: z.enum(['exact', 'near']),
  distance: z.number().int().describe('Bits in which the perceptual hashes differ (0-64); 0 when exact'),
});

export const DuplicateList = z.object({
  duplicates: z.array(
    Duplicate.extend({
      relation: z.enum(['earlier', 'later']).describe('Whether the other job was registered before or after this one'),
    }),
  ),
});

export const JobDocumentSchema = z
  .object({
    id: z.string(),
    status: z.enum(JOB_STATUSES),
    fileType: z.enum(FILE_TYPES).nullable(),
    file: z.object({
      name: z.string(),
      size: z.number().optional(),
      mime: z.string().optional(),
      sha256: z.string().optional(),
    }),
    user: z.object({ id: z.string() }).nullable(),
    priority: z.number(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    steps: z.record(z.string(), StepRecord),
    results: z
      .object({
        metadata: z.any().optional(),
        thumbnails: z.any().optional(),
        placeholder: z.any().optional(),
        analysis: z.any().optional(),
        audio: z.any().optional(),
        transcript: z.any().optional(),
        text: z.any().optional(),
        summary: z.any().optional(),
        waveform: WaveformResult.optional(),
        loudness: LoudnessResult.optional(),
        video: z.any().optional().describe('The web rendition (transcodeVideo): H.264/AAC MP4 with faststart'),
        storyboard: z.any().optional().describe('Scrub previews: a sprite and its WebVTT #xywh cues'),
        perceptualHash: z
          .object({ kind: z.literal('dhash'), value: z.string() })
          .optional()
          .describe("An image's 64-bit dHash (16 hex digits), for near duplicates"),
        duplicates: z
          .array(Duplicate)
          .optional()
          .describe(
            'Jobs of the same owner finished before this one with the same bytes (exact) or a close picture (near)',
          ),
      })
      .catchall(z.unknown().describe("A plugin step's result, under the step's name")),
    duplicateOf: z
      .string()
      .optional()
      .describe('DUPLICATES=skip: the earlier job with the same bytes whose results this one shares (no step ran)'),
    instructions: InstructionsSchema.optional().describe('What the producer asked for this job'),
    profile: z.string().optional().describe('The preset (PROFILES_FILE) the job asked for'),
    review: z
      .object({
        reason: z.string(),
        evidence: z.any(),
        requestedAt: z.string(),
        decision: z.enum(['approve', 'reject']).optional(),
        note: z.string().optional(),
        decidedAt: z.string().optional(),
      })
      .optional()
      .describe('Why the job waits (waited) for a person, what they are shown, and their decision'),
    artifacts: z
      .array(z.object({ name: z.string(), url: z.string(), bytes: z.number().int() }))
      .optional()
      .describe('GET /jobs/:id only: every file the job produced, by name, with its URL'),
    retry: z
      .object({ allowed: z.boolean(), reason: z.string().nullable() })
      .optional()
      .describe('Whether POST /jobs/:id/retry would be accepted; the reason when not'),
    error: z
      .object({
        code: z
          .union([z.enum(ERROR_CODES), z.string().regex(PLUGIN_ERROR_CODE)])
          .describe("A built-in code, or a plugin step's own"),
        message: z.string(),
        step: z.string().nullable(),
      })
      .nullable(),
    warnings: z
      .array(z.object({ code: z.enum(WARNING_CODES), message: z.string() }))
      .optional()
      .describe('The file is damaged but usable (TRUNCATED: cut short); the job ended completed_with_errors'),
    usage: z
      .object({
        inputTokens: z.number(),
        outputTokens: z.number(),
        totalTokens: z.number(),
        calls: z.number(),
        latencyMs: z.number(),
      })
      .optional()
      .describe("What the job's AI steps spent, summed over their results"),
    webhook: z
      .object({
        url: z.string(),
        status: z.enum(['pending', 'delivered', 'failed']),
        attempts: z.number().int(),
        lastStatusCode: z.number().int().nullable(),
        lastError: z.string().nullable(),
        deliveredAt: z.string().nullable(),
      })
      .optional(),
  })
  .describe('The job document');

export const JobList = z.object({
  jobs: z.array(JobDocumentSchema),
  nextCursor: z.string().nullable(),
  /** With `q` only: one per job, in the same order, the part of its text that matched (`match: true` pieces). */
  matches: z
    .array(z.object({ id: z.string(), snippet: z.array(z.object({ text: z.string(), match: z.boolean() })) }))
    .optional(),
});

export const JobIdParams = z.object({ id: z.string().regex(JOB_ID_PATTERN, 'not a job id') });

export const ArtifactParams = JobIdParams.extend({ name: z.string().min(1).max(200) });

export const ListQuery = z.object({
  q: z
    .string()
    .max(500)
    .optional()
    .describe(
      'Full-text search over file names, labels, captions, transcripts, document text and summaries: every word must ' +
        'occur (stemmed, so "dogs" finds "dog"); `word*` matches a prefix. Results are ranked, best first.',
    ),
  status: z.enum(JOB_STATUSES).optional(),
  fileType: z.enum(FILE_TYPES).optional(),
  user: z.string().max(200).optional(),
  duplicates: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional()
    .describe('true: only jobs whose documents list duplicates; false: only those that list none'),
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const ReviewBody = z.strictObject({
  decision: z.enum(['approve', 'reject']),
  note: z.string().max(2000).optional(),
});

/** The JSON body of POST /jobs: the one input schema of a request (lib/job-input.ts). */
export const CreateJobJson = JobRequestSchema;
