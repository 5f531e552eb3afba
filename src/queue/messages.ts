/**
 * The JOB_CREATED message data, validated at intake: a malformed message fails its job once, with a clear code. The
 * schema is closed: an unknown key is refused, so a producer can never reach the service's internal state.
 */
import { z } from 'zod';
import { InstructionsSchema, PROFILE_NAME, describeIssues } from '../lib/instructions.js';
import { MAX_URL_LENGTH, urlProblem } from '../lib/outbound.js';
import type { JobInput } from '../lib/types.js';
import { JOB_ID_PATTERN } from './names.js';

/** Where a finished job's document is POSTed: http(s), bounded; the address is checked again at delivery. */
export const NotifyUrl = z
  .string()
  .max(MAX_URL_LENGTH, `notifyUrl is longer than ${MAX_URL_LENGTH} characters`)
  .refine((u) => urlProblem(u) === null, {
    message: 'notifyUrl must be an http:// or https:// URL without credentials',
  });

/** A profile's name (PROFILES_FILE); whether it is defined is checked where the profiles are loaded. */
export const Profile = z.string().regex(PROFILE_NAME, 'profile: a-z, 0-9, _ and -, at most 64 characters');

/** BullMQ's largest priority (2^21 - 1); above it `add` throws. */
export const MAX_PRIORITY = 2_097_151;

export const JobCreatedSchema = z.strictObject({
  jobId: z.string().regex(JOB_ID_PATTERN, 'jobId: letters, digits, _ . - only, at most 128, no ":"'),
  file: z.strictObject({
    path: z
      .string()
      .min(1)
      .max(4096)
      .refine((p) => p.startsWith('/'), 'file.path must be absolute'),
    name: z.string().min(1).max(255).optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'file.sha256 must be 64 hex digits')
      .optional(),
  }),
  user: z
    .strictObject({ id: z.string().min(1).max(200) })
    .nullable()
    .optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  notifyUrl: NotifyUrl.optional(),
  instructions: InstructionsSchema.optional(),
  profile: Profile.optional(),
});

/** Limits of a JOB_CREATED message, checked before the schema (which would recurse into any depth). */
export const MESSAGE_LIMITS = { bytes: 64 * 1024, depth: 16 } as const;

/**
 * The message's size (as JSON, approximately: string and key lengths plus punctuation) and nesting depth, walked
 * without recursion and stopping as soon as either limit is passed: a message nested 5,000 levels deep must not
 * overflow the stack, and a 60 MB one must not be walked to its end.
 */
function overLimits(data: unknown): string | null {
  const stack: { value: unknown; depth: number }[] = [{ value: data, depth: 1 }];
  let bytes = 0;
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (value !== null && typeof value === 'object') {
      if (depth > MESSAGE_LIMITS.depth) return `nested deeper than ${MESSAGE_LIMITS.depth} levels`;
      const entries = Array.isArray(value) ? value.map((v) => ['', v] as const) : Object.entries(value);
      for (const [key, v] of entries) {
        bytes += key.length + 4;
        stack.push({ value: v, depth: depth + 1 });
      }
    } else bytes += typeof value === 'string' ? value.length + 2 : 8;
    if (bytes > MESSAGE_LIMITS.bytes) return `larger than ${MESSAGE_LIMITS.bytes} bytes`;
  }
  return null;
}

export function parseJobCreated(data: unknown): { ok: true; input: JobInput } | { ok: false; message: string } {
  const tooBig = overLimits(data);
  if (tooBig) return { ok: false, message: `malformed JOB_CREATED message: ${tooBig}` };
  const parsed = JobCreatedSchema.safeParse(data);
  if (parsed.success) return { ok: true, input: parsed.data };
  return { ok: false, message: `malformed JOB_CREATED message: ${describeIssues(parsed.error.issues)}` };
}
