/**
 * The JOB_CREATED message data, validated at intake: a malformed message fails its job once, with a clear code. The
 * schema is closed: an unknown key is refused, so a producer can never reach the service's internal state.
 */
import { z } from 'zod';
import type { JobInput } from '../lib/types.js';
import { JOB_ID_PATTERN } from './names.js';

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
  notifyUrl: z.url().optional(),
});

export type JobCreated = z.infer<typeof JobCreatedSchema>;

export function parseJobCreated(data: unknown): { ok: true; input: JobInput } | { ok: false; message: string } {
  const parsed = JobCreatedSchema.safeParse(data);
  if (parsed.success) return { ok: true, input: parsed.data };
  const message = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || 'message'}: ${i.message}`)
    .join('; ');
  return { ok: false, message: `malformed JOB_CREATED message: ${message}` };
}
