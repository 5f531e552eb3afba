// A plugin step: the words a document is about, from the text extractText saved (text.txt).
// PLUGINS=./examples/keywords/index.mjs; per job: "instructions": { "steps": { "keywords": { "count": 5 } } }
import { z } from 'zod';

const Options = z.strictObject({ count: z.number().int().min(1).max(50).default(10) });

// Words too common in English to say what a text is about.
const STOP = new Set(
  (
    'a about above after again against all also am an and any are as at be because been before being below between ' +
    'both but by can could did do does doing down during each few for from further had has have having he her here ' +
    'hers him his how i if in into is it its itself just may me might more most must my no nor not now of off on ' +
    'once only or other our ours out over own same shall she should so some such than that the their theirs them ' +
    'then there these they this those through to too under until up upon us very was we were what when where which ' +
    'while who whom why will with within without would you your yours one two et al fig figure table section use ' +
    'used using can new may however thus'
  ).split(' '),
);

/** @type {import('media-orchestrator/plugin').StepDefinition<z.infer<typeof Options>>} */
export default {
  name: 'keywords',
  fileTypes: ['pdf'],
  after: 'extractText',
  queue: 'document',
  optional: true,
  timeoutMs: 30_000,
  attempts: 2,
  options: Options,
  async run(input, ctx) {
    const text = await ctx.artifacts.readText('text.txt');
    if (text === null) {
      const err = new Error('extractText left no text.txt');
      err.code = 'NO_TEXT';
      throw err;
    }
    const counts = new Map();
    let words = 0;
    for (const match of text.toLowerCase().matchAll(/\p{L}[\p{L}\p{N}'-]*\p{L}/gu)) {
      const word = match[0];
      words += 1;
      if (word.length < 3 || STOP.has(word)) continue;
      counts.set(word, (counts.get(word) ?? 0) + 1);
      if (words % 50_000 === 0) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        await new Promise((r) => setImmediate(r));
      }
    }
    const keywords = [...counts]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, input.options.count)
      .map(([word, count]) => ({ word, count }));
    return { words, keywords };
  },
};
