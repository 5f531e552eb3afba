/**
 * The JOB_CREATED message data, validated at intake against the one input schema (lib/job-input.ts): a malformed
 * message fails its job once, with a clear code.
 */
import { describeIssues } from '../lib/instructions.js';
import { JobInputSchema, type JobInput } from '../lib/job-input.js';

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
  const parsed = JobInputSchema.safeParse(data);
  if (parsed.success) return { ok: true, input: parsed.data };
  return { ok: false, message: `malformed JOB_CREATED message: ${describeIssues(parsed.error.issues)}` };
}
