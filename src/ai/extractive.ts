/**
 * Offline extractive summaries: wink-nlp (with its English model, shipped in npm) scores every sentence's importance;
 * the best few that read like prose are returned in document order. The library and its model (20 MB of heap) load on
 * first use, once per thread: a step thread that never summarises never holds them.
 */
import type { WinkMethods } from 'wink-nlp';
import { emptyUsage, type TextModel } from './types.js';

const MAX_INPUT_CHARS = 400_000;

export interface Summarizer {
  summarize(text: string, opts?: { sentences?: number; maxChars?: number }): Promise<string>;
}

let loading: Promise<WinkMethods> | null = null;
function loadNlp(): Promise<WinkMethods> {
  loading ??= Promise.all([import('wink-nlp'), import('wink-eng-lite-web-model')]).then(([wink, model]) =>
    wink.default(model.default),
  );
  return loading;
}

export function createSummarizer(): Summarizer {
  return {
    summarize: async (text, opts = {}) => {
      const nlp = await loadNlp();
      const clean = withoutBoilerplateLines(text.slice(0, MAX_INPUT_CHARS))
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
      const readable = importance.filter(
        (s) => readsLikeProse(sentences[s.index] ?? '') && !BOILERPLATE_SENTENCE.test(sentences[s.index] ?? ''),
      );
      // Fewer sentences rather than fragments of tables, code or text that lost its spaces.
      const pool = readable.length > 0 ? readable : importance;
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

/** Notices, not content: copyright and licence lines, permission notices, links and addresses. */
const BOILERPLATE_SENTENCE =
  /copyright|©|\(c\)\s*\d{4}|all rights reserved|permission to (make|copy)|licen[cs]e|https?:\/\/|www\.|\S+@\S+\.\w+|\bdoi\b|\bISSN\b|\bISBN\b/i;
/** Cover-page lines that only label: "Permanent URL: …", "Keywords: …", "Reference: …". */
const LABEL_LINE =
  /^\s*(permanent url|url|doi|issn|isbn|keywords?|reference|citation|copyright|downloaded from|available at)\b/i;

/**
 * Drops what a document repeats or labels rather than says, before sentences are scored: running headers and
 * footers (a short line seen on three or more pages), cover-page label lines, lines that are mostly a link or an
 * address, and heading-like lines (a title, author names, an affiliation) that would otherwise be glued to the
 * first sentence of the text below them.
 */
export function withoutBoilerplateLines(text: string): string {
  const lines = text.replace(/\r/g, '').split('\n');
  // A running header or footer may carry the page number at either end; the rest of it repeats exactly.
  const key = (line: string): string =>
    line
      .replace(/\s+/g, ' ')
      .trim()
      .replace(/^\d+ ?| ?\d+$/g, '#')
      .toLowerCase();
  const seen = new Map<string, number>();
  for (const line of lines) {
    const k = key(line);
    if (k && k.length <= 120) seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  const kept: string[] = [];
  let inLabel = false;
  for (const [i, line] of lines.entries()) {
    const trimmed = line.trim();
    if (!trimmed) {
      inLabel = false;
      kept.push('');
      continue;
    }
    // A label runs on over the lines that continue it, until one ends a sentence.
    if (LABEL_LINE.test(trimmed) || inLabel) {
      inLabel = !/[.!?]["'’”)\]]?$/u.test(trimmed);
      continue;
    }
    if ((seen.get(key(line)) ?? 0) >= 3) continue;
    const letters = (trimmed.match(/\p{L}/gu) ?? []).length;
    if (letters / trimmed.replace(/\s/g, '').length < 0.5) continue;
    if (/https?:\/\/|www\.|\S+@\S+/.test(trimmed) && trimmed.split(/\s+/).length <= 6) continue;
    const next =
      lines
        .slice(i + 1)
        .find((l) => l.trim())
        ?.trim() ?? '';
    const words = trimmed.split(/\s+/).length;
    const heading =
      words < 8 && !/[.!?:;]["'’”)\]]?$/u.test(trimmed) && !trimmed.endsWith('-') && /^\p{Lu}/u.test(next);
    if (heading) {
      kept.push('');
      continue;
    }
    kept.push(line);
  }
  return kept.join('\n');
}

/** Leaves out code, tables and reference lists: 6-60 real words, mostly letters, ending like a sentence. */
function readsLikeProse(sentence: string): boolean {
  const words = sentence.split(/\s+/).length;
  const chars = sentence.replace(/\s/g, '').length;
  const letters = (sentence.match(/\p{L}/gu) ?? []).length;
  return (
    words >= 6 &&
    words <= 60 &&
    chars > 0 &&
    chars / words < 12 && // words glued together by a bad text layer
    letters / chars > 0.75 &&
    /[.!?。؟]["'’”)\]]?$/u.test(sentence)
  );
}

function clamp(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), max * 0.8))}…`;
}

/** The offline TextModel: the extractive summary above. No title, key points or chapters: it cannot write them. */
export function createExtractiveText(): TextModel {
  const summarizer = createSummarizer();
  return {
    provider: 'local-extractive',
    model: 'wink-eng-lite-web-model',
    warm: async () => void (await loadNlp()),
    async summarize(input, { signal }) {
      signal.throwIfAborted();
      const started = performance.now();
      // Sentences picked, by the length the job asked for; the language is the text's own (nothing is written).
      const sentences = input.length ? { short: 2, medium: 4, long: 8 }[input.length] : undefined;
      const summary = await summarizer.summarize(input.text, sentences ? { sentences } : {});
      return {
        provider: 'local-extractive',
        model: 'wink-eng-lite-web-model',
        title: null,
        summary,
        keyPoints: [],
        language: null,
        chapters: [],
        chunks: 1,
        usage: { ...emptyUsage(), calls: 1, latencyMs: Math.round(performance.now() - started) },
      };
    },
  };
}
