/** `submit --instructions JSON --profile NAME`, checked as the service will check them (lib/instructions.ts). */
import { describeIssues, InstructionsSchema, PROFILE_NAME, type Instructions } from '../lib/instructions.js';

/** The options to send, or why they cannot be sent. */
export function parseWishes(
  instructions: string | undefined,
  profile: string | undefined,
): { instructions?: Instructions; profile?: string } | string {
  const out: { instructions?: Instructions; profile?: string } = {};
  if (instructions !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(instructions);
    } catch {
      return '--instructions must be a JSON object, e.g. \'{"thumbnails":{"widths":[256]}}\'';
    }
    const parsed = InstructionsSchema.safeParse(raw);
    if (!parsed.success) return `--instructions: ${describeIssues(parsed.error.issues)}`;
    out.instructions = parsed.data;
  }
  if (profile !== undefined) {
    if (!PROFILE_NAME.test(profile)) return '--profile: a-z, 0-9, _ and -, at most 64 characters';
    out.profile = profile;
  }
  return out;
}
