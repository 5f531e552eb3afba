/**
 * What a producer may ask of a job, as one schema: the JOB_CREATED message on Redis, the JSON body of POST /jobs and
 * the fields of a multipart upload are all read through it, and `JobInput` is its type. The schema is closed: an
 * unknown key is refused, so a producer can never reach the service's internal state.
 */
import { z } from 'zod';
import { describeIssues, InstructionsSchema, PROFILE_NAME } from './instructions.js';
import { MAX_URL_LENGTH, urlProblem } from './outbound.js';

/** Job ids travel in Redis keys and URLs: no `:` (BullMQ's separator), nothing that needs escaping. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** BullMQ's largest priority (2^21 - 1); above it `add` throws. */
export const MAX_PRIORITY = 2_097_151;

/** Where a finished job's document is POSTed: http(s), bounded; the address is checked again at delivery. */
export const NotifyUrl = z
  .string()
  .max(MAX_URL_LENGTH, `notifyUrl is longer than ${MAX_URL_LENGTH} characters`)
  .refine((u) => urlProblem(u) === null, {
    message: 'notifyUrl must be an http:// or https:// URL without credentials',
  });

/** A profile's name (PROFILES_FILE); whether it is defined is checked where the profiles are loaded. */
export const Profile = z.string().regex(PROFILE_NAME, 'profile: a-z, 0-9, _ and -, at most 64 characters');

const FileRef = z.strictObject({
  path: z.string().min(1).max(4096),
  name: z.string().min(1).max(255).optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'file.sha256 must be 64 hex digits')
    .optional(),
});

/** What a client asks for (POST /jobs): the service gives the job its id and resolves the path. */
export const JobRequestSchema = z.strictObject({
  file: FileRef,
  user: z
    .strictObject({ id: z.string().min(1).max(200) })
    .nullable()
    .optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  notifyUrl: NotifyUrl.optional(),
  instructions: InstructionsSchema.optional().describe(
    'What this job asks for: skip (optional steps to leave out), thumbnails (widths, format, quality, fit), ' +
      'transcribe (false: none), summary (length, language). Closed: an unknown key is refused with INVALID_INPUT.',
  ),
  profile: Profile.optional().describe('A preset from PROFILES_FILE; the instructions apply on top of it'),
});
export type JobRequest = z.infer<typeof JobRequestSchema>;

/** The JOB_CREATED message: a request with its job id, naming its file by an absolute path. */
export const JobInputSchema = JobRequestSchema.extend({
  jobId: z.string().regex(JOB_ID_PATTERN, 'jobId: letters, digits, _ . - only, at most 128, no ":"'),
  file: FileRef.extend({
    path: FileRef.shape.path.refine((p) => p.startsWith('/'), 'file.path must be absolute'),
  }),
});
export type JobInput = z.infer<typeof JobInputSchema>;

/** The request's own wishes (instructions, profile): input to validate like a message's, not the request's shape. */
const WISHES = new Set(['instructions', 'profile']);

/**
 * Why a request does not match, with the code the API answers: INVALID_INPUT for the job's instructions and
 * profile (as a message's are refused), BAD_REQUEST for the rest of the request.
 */
export function requestProblem(error: z.ZodError): { code: 'INVALID_INPUT' | 'BAD_REQUEST'; message: string } {
  const issues = error.issues;
  if (issues.some((i) => WISHES.has(String(i.path[0]))))
    return { code: 'INVALID_INPUT', message: describeIssues(issues) };
  return { code: 'BAD_REQUEST', message: issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') };
}

/**
 * A multipart upload's text fields as a request's values, for `JobRequestSchema` to judge: `priority` a number only
 * when it is written as one (digits), `instructions` parsed from JSON; the rest as given. What cannot be read stays
 * as it is, so the schema refuses it with its usual message.
 */
export function requestFromFields(
  fields: Readonly<Record<string, string>>,
  file: { path: string; name: string },
): unknown {
  const priority = fields.priority;
  let instructions: unknown = fields.instructions;
  if (typeof instructions === 'string') {
    try {
      instructions = JSON.parse(instructions);
    } catch {
      // Left a string: "expected object".
    }
  }
  return {
    file,
    user: fields.userId ? { id: fields.userId } : null,
    ...(priority === undefined ? {} : { priority: /^\d{1,16}$/.test(priority) ? Number(priority) : priority }),
    ...(fields.notifyUrl === undefined ? {} : { notifyUrl: fields.notifyUrl }),
    ...(instructions === undefined ? {} : { instructions }),
    ...(fields.profile === undefined ? {} : { profile: fields.profile }),
  };
}
