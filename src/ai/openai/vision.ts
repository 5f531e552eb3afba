/** Pictures described by a vision model: caption, labels, tags, visible text and content flags, bounded. */
import { HumanMessage } from '@langchain/core/messages';
import type { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';
import { emptyUsage, type CallOptions, type VisionInput, type VisionModel, type VisionResult } from '../types.js';
import { clean, cleanList, PROVIDER, structuredCall, type ProviderContext } from './provider.js';

// What the model must answer (kept to what strict JSON-schema mode accepts; bounds are applied afterwards).
const VisionSchema = z.object({
  caption: z.string().describe('One sentence describing the picture.'),
  labels: z
    .array(
      z.object({
        name: z.string().describe('An object or concept in the picture, in a few words.'),
        score: z.number().describe('Confidence from 0 to 1.'),
      }),
    )
    .describe('Up to 20 objects or concepts, most prominent first.'),
  tags: z.array(z.string()).describe('Up to 20 short lowercase keywords for search.'),
  text: z.string().describe('Text visible in the picture, verbatim; an empty string when there is none.'),
  safety: z
    .object({
      flagged: z.boolean().describe('True when the picture shows nudity, sexual content, violence or gore.'),
      categories: z.array(z.string()).describe('The flagged categories, e.g. "nudity", "violence"; else empty.'),
    })
    .describe('Content flags.'),
});
type VisionAnswer = z.infer<typeof VisionSchema>;

const VISION_PROMPT =
  'Describe this picture for a media library. Give one sentence as caption; up to 20 labels (objects or concepts, ' +
  'most prominent first, each with a confidence from 0 to 1); up to 20 search tags; any text visible in the picture ' +
  'verbatim (empty when none); and whether it shows nudity, sexual content, violence or gore.';

export function createVisionModel(chat: ChatOpenAI, ctx: ProviderContext): VisionModel {
  const runnable = chat.withStructuredOutput(VisionSchema, { name: 'describe_image', includeRaw: true });
  return {
    provider: PROVIDER,
    model: ctx.model,
    async analyze(input: VisionInput, { signal }: CallOptions): Promise<VisionResult> {
      const usage = emptyUsage();
      const url = `data:${input.mime};base64,${input.image.toString('base64')}`;
      const messages = [
        new HumanMessage({
          content: [
            { type: 'text', text: VISION_PROMPT },
            { type: 'image_url', image_url: { url } },
          ],
        }),
      ];
      const answer = await structuredCall(runnable, VisionSchema, messages, 'vision', ctx, signal, usage);
      return { provider: PROVIDER, model: ctx.model, usage, ...boundVision(answer) };
    },
  };
}

function boundVision(a: VisionAnswer): Omit<VisionResult, 'provider' | 'model' | 'usage'> {
  const byName = new Map<string, { name: string; score: number }>();
  for (const l of a.labels.slice(0, 200)) {
    const name = clean(l.name, 60);
    // First mention wins; scores outside 0..1 are clamped, a missing one counts as 0.
    if (name && !byName.has(name.toLowerCase())) {
      const score = Number.isFinite(l.score) ? Math.min(1, Math.max(0, l.score)) : 0;
      byName.set(name.toLowerCase(), { name, score: Math.round(score * 1000) / 1000 });
    }
  }
  const labels = [...byName.values()].sort((x, y) => y.score - x.score).slice(0, 20);
  const text = a.text.trim().slice(0, 2_000);
  const categories = cleanList(a.safety.categories, 10, 40).map((c) => c.toLowerCase());
  return {
    caption: clean(a.caption, 300) || null,
    labels,
    tags: cleanList(a.tags, 20, 40).map((t) => t.toLowerCase()),
    text: text || null,
    safety: { flagged: a.safety.flagged === true || categories.length > 0, categories },
  };
}
