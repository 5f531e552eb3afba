/**
 * Offline extractive summaries: wink-nlp (with its English model, shipped in npm) scores every sentence's importance;
 * the best few that read like prose are returned in document order. The model loads on first use, once per process.
 */
import winkNLP, { type WinkMethods } from 'wink-nlp';
import model from 'wink-eng-lite-web-model';

const MAX_INPUT_CHARS = 400_000;

export interface Summarizer {
  summarize(text: string, opts?: { sentences?: number; maxChars?: number }): string;
}

export function createSummarizer(): Summarizer {
  let nlp: WinkMethods | null = null;
  return {
    summarize: (text, opts = {}) => {
      nlp ??= winkNLP(model);
      const clean = text
        .slice(0, MAX_INPUT_CHARS)
        .replace(/-\n(?=\p{Ll})/gu, '') // words hyphenated across lines
        .replace(/\s+/g, ' ')
        .trim();
      if (!clean) return '';
      const doc = nlp.readDoc(clean);
      const sentences = doc.sentences().out();
      const wanted = opts.sentences ?? (sentences.length > 40 ? 5 : 3);
      if (sentences.length <= wanted) return clamp(sentences.join(' '), opts.maxChars ?? 1200);
      // `its` helpers are plain functions that wink-nlp calls itself; the lint rule cannot know that.
      // eslint-disable-next-line @typescript-eslint/unbound-method
      const importance = doc.out(nlp.its.sentenceWiseImportance) as unknown as { index: number; importance: number }[];
      const readable = importance.filter((s) => readsLikeProse(sentences[s.index] ?? ''));
      const pool = readable.length >= wanted ? readable : importance;
      // Lead bias: authors state what a text is about early (abstracts, introductions).
      const lead = Math.max(wanted, Math.ceil(sentences.length * 0.15));
      const score = (s: { index: number; importance: number }): number => s.importance * (s.index < lead ? 1.5 : 1);
      const best = [...pool]
        .sort((a, b) => score(b) - score(a) || a.index - b.index)
        .slice(0, wanted)
        .sort((a, b) => a.index - b.index);
      return clamp(best.map((s) => sentences[s.index]).join(' '), opts.maxChars ?? 1200);
    },
  };
}

/** Leaves out code, tables and reference lists: 6-60 words, mostly letters, ending like a sentence. */
function readsLikeProse(sentence: string): boolean {
  const words = sentence.split(/\s+/).length;
  const chars = sentence.replace(/\s/g, '').length;
  const letters = (sentence.match(/\p{L}/gu) ?? []).length;
  return words >= 6 && words <= 60 && chars > 0 && letters / chars > 0.75 && /[.!?。؟]["'’”)\]]?$/u.test(sentence);
}

function clamp(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), max * 0.8))}…`;
}
