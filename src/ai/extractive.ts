/**
 * Offline extractive summaries. The text is cleaned first (text-clean.ts: running headers, notices, contents,
 * references), cut into sentences, and its language found (language.ts) so that its own stop words are ignored;
 * sentences are ranked by centrality (LexRank, textrank.ts) times a position prior (abstract, introduction, lead);
 * the best are returned whole, in reading order, as many as the text's length calls for. A text of fewer than about
 * 80 words gets a one-sentence gist, never itself. Timed transcripts of two minutes or more get chapters
 * (chapters.ts). Plain code: nothing to load, nothing downloaded.
 */
import { chaptersOf } from './chapters.js';
import { detectLanguage, stopWords, words } from './language.js';
import { cleanDocument, endsLikeSentence, isBoilerplateSentence, splitSentences, type Section } from './text-clean.js';
import { centroid, cosine, lexRank, terms, tfidfVectors } from './textrank.js';
import { emptyUsage, type TextInput, type TextModel, type TranscriptSegment } from './types.js';

const MAX_INPUT_CHARS = 400_000;
/** Sentences the graph ranks at the most (its cost grows with the square); the rest are pre-ranked by centroid. */
const MAX_RANKED = 800;
/** Below this many words a text gets a one-sentence gist. */
const GIST_WORDS = 80;
const MAX_SUMMARY_CHARS = 3000;

export const EXTRACTIVE_MODEL = 'lexrank';

export interface ExtractiveSummary {
  title: string | null;
  summary: string;
  keyPoints: string[];
  language: string | null;
  chapters: { start: number; title: string }[];
}

interface Unit {
  text: string;
  section: Section;
  /** Reading order. */
  index: number;
  words: number;
}

/** The summary of a text or a transcript, computed here and now. */
export function summarizeExtractive(input: TextInput): ExtractiveSummary {
  const text = input.text.slice(0, MAX_INPUT_CHARS);
  const language = detectLanguage(text);
  const { units, headings } =
    input.source === 'text'
      ? documentUnits(text)
      : { units: transcriptUnits(text, input.segments ?? []), headings: [] };
  const totalWords = units.reduce((n, u) => n + u.words, 0);
  const stops = stopWords(language);
  const chapters = input.source === 'transcript' && input.segments?.length ? chaptersOf(input.segments, stops) : [];
  const base = { title: input.title?.trim() || null, language, chapters };

  const candidates = units.filter((u) => readable(u, input.source));
  if (candidates.length === 0) return { ...base, summary: '', keyPoints: [] };
  const ranked = rank(candidates, units.length, stops);
  const gist = totalWords < GIST_WORDS;
  // Nothing shorter than the text itself can be said of a single sentence.
  if (gist && units.length <= 1) return { ...base, summary: '', keyPoints: [] };

  const budget = gist ? 0 : wordBudget(totalWords, input.length);
  const maxSentences = gist ? 1 : input.length === 'short' ? 2 : 40;
  const chosen = pick(ranked, budget, maxSentences);
  const summary = clamp(
    chosen
      .sort((a, b) => a.unit.index - b.unit.index)
      .map((c) => c.unit.text)
      .join(' '),
    MAX_SUMMARY_CHARS,
  );
  return { ...base, summary, keyPoints: gist ? [] : keyPointsOf(headings, ranked) };
}

// ---- units -------------------------------------------------------------------------------------------------------

function documentUnits(text: string): { units: Unit[]; headings: string[] } {
  const doc = cleanDocument(text);
  const units: Unit[] = [];
  for (const block of doc.blocks) {
    for (const s of splitSentences(block.text)) {
      units.push({ text: s, section: block.section, index: units.length, words: s.split(' ').length });
    }
  }
  return { units, headings: doc.headings };
}

/**
 * A transcript's sentences where it has punctuation; otherwise (PocketSphinx writes none) its timed segments, or
 * runs of about twenty words, each made to read as a sentence.
 */
function transcriptUnits(text: string, segments: TranscriptSegment[]): Unit[] {
  const flat = text.replace(/\s+/g, ' ').trim();
  const sentences = splitSentences(flat);
  const count = words(flat).length;
  let pieces: string[];
  if (sentences.length > 1 && count / sentences.length <= 40) pieces = sentences;
  else {
    const source = segments.length > 1 ? segments.map((s) => s.text) : [flat];
    pieces = source.flatMap((s) => runs(s.trim().split(/\s+/), 20)).map(asSentence);
  }
  return pieces.map((s, index) => ({ text: s, section: 'body', index, words: s.split(' ').length }));
}

function runs(tokens: string[], size: number): string[] {
  const count = Math.max(1, Math.round(tokens.length / size));
  const per = Math.ceil(tokens.length / count);
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i += per) out.push(tokens.slice(i, i + per).join(' '));
  return out.filter(Boolean);
}

const asSentence = (s: string): string =>
  endsLikeSentence(s) ? s : `${s.replace(/^\p{Ll}/u, (c) => c.toUpperCase()).replace(/[,;:\s]+$/, '')}.`;

/** A complete sentence of prose: not a notice, a table row, code or a fragment cut from its start. */
function readable(u: Unit, source: TextInput['source']): boolean {
  const s = u.text;
  const chars = s.replace(/\s/g, '').length;
  const letters = (s.match(/\p{L}/gu) ?? []).length;
  return (
    u.words >= (source === 'text' ? 6 : 4) &&
    u.words <= 60 &&
    chars / u.words < 12 && // words glued together by a bad text layer
    letters / chars > 0.72 &&
    endsLikeSentence(s) &&
    /^["'‘“(¿¡]?[\p{Lu}\p{N}\p{Lo}]/u.test(s) &&
    balanced(s) &&
    !isBoilerplateSentence(s) &&
    !looksLikeLabels(s)
  );
}

/** Text of a figure or table read as a line: mostly capitalised words, or a caption number inside it. */
function looksLikeLabels(s: string): boolean {
  const tokens = s.split(' ').slice(1);
  const capitalised = tokens.filter((w) => /^\p{Lu}/u.test(w)).length;
  return (tokens.length >= 8 && capitalised / tokens.length > 0.45) || /\S\s+(Figure|Fig\.|Table)\s+\d+[.:]/.test(s);
}

function balanced(s: string): boolean {
  const count = (re: RegExp): number => (s.match(re) ?? []).length;
  return count(/\(/g) === count(/\)/g) && count(/\[/g) === count(/\]/g);
}

// ---- ranking -----------------------------------------------------------------------------------------------------

interface Ranked {
  unit: Unit;
  score: number;
  vector: Map<string, number>;
}

function rank(candidates: Unit[], total: number, stops: Set<string>): Ranked[] {
  let pool = candidates;
  let vectors = tfidfVectors(pool.map((u) => terms(u.text, stops)));
  if (pool.length > MAX_RANKED) {
    // Too many for the graph: keep those closest to what the whole text is about.
    const centre = centroid(vectors);
    const keep = pool
      .map((u, i) => ({ i, s: cosine(vectors[i] as Map<string, number>, centre) }))
      .sort((a, b) => b.s - a.s)
      .slice(0, MAX_RANKED)
      .map((x) => x.i)
      .sort((a, b) => a - b);
    pool = keep.map((i) => pool[i] as Unit);
    vectors = keep.map((i) => vectors[i] as Map<string, number>);
  }
  const centrality = lexRank(vectors);
  const structured = pool.some((u) => u.section !== 'front');
  return pool
    .map((unit, i) => ({
      unit,
      vector: vectors[i] as Map<string, number>,
      score: (centrality[i] ?? 0) * prior(unit, total, structured) * lengthFactor(unit.words) * standsAlone(unit.text),
    }))
    .filter((r) => r.vector.size > 0)
    .sort((a, b) => b.score - a.score || a.unit.index - b.unit.index);
}

/** Authors say what a text is about in its abstract and introduction, and again in its conclusion. */
function prior(u: Unit, total: number, structured: boolean): number {
  if (structured) {
    return { front: 0.8, abstract: 2, introduction: 1.3, conclusion: 1.2, body: 1 }[u.section];
  }
  const at = u.index / Math.max(1, total);
  return at < 0.15 ? 1.4 - at * 2 : 1;
}

/** A sentence that leans on the one before it ("But this…") or points elsewhere ("in Section 6") reads badly alone. */
function standsAlone(s: string): number {
  let f = 1;
  if (/^(but|however|this|these|that|those|it|they|thus|so|and|also|then|therefore|hence|here|such)\b/i.test(s))
    f *= 0.75;
  if (/\b(section|chapter|figure|fig\.|table)\s+\d/i.test(s)) f *= 0.6;
  return f;
}

/** Very short sentences say little on their own; very long ones crowd a summary. */
const lengthFactor = (n: number): number => (n < 10 ? 0.7 + n * 0.03 : n > 40 ? 0.85 : 1);

/**
 * Words the summary may hold: about a twentieth of the text, 90 to 180 (long: a tenth, 150 to 450; short: 60), and
 * never more than two fifths of it.
 */
function wordBudget(totalWords: number, length: TextInput['length']): number {
  if (length === 'short') return 60;
  const share = length === 'long' ? 0.1 : 0.05;
  const [min, max] = length === 'long' ? [150, 450] : [90, 180];
  return Math.min(max, Math.max(min, Math.round(totalWords * share)), Math.round(totalWords * 0.4));
}

/** The best sentences within the budget, none repeating one already taken. */
function pick(ranked: Ranked[], budget: number, maxSentences: number): Ranked[] {
  const chosen: Ranked[] = [];
  let used = 0;
  for (const r of ranked) {
    if (chosen.length >= maxSentences) break;
    if (chosen.length > 0 && used + r.unit.words > budget) continue;
    if (chosen.some((c) => cosine(c.vector, r.vector) > 0.5)) continue;
    chosen.push(r);
    used += r.unit.words;
  }
  return chosen;
}

/** Headings that say nothing about this document in particular. */
const GENERIC_HEADING =
  /^(abstract|summary|introduction|conclusions?( and future work)?|discussion|related work|background|acknowledge?ments?|appendix( \w+)?|preface|foreword|contents|table of contents|references|bibliography|evaluation|results|methods?)$/i;

/** The document's headings when it has three or more worth listing, else the best distinct sentences. */
function keyPointsOf(headings: string[], ranked: Ranked[]): string[] {
  const specific = [...new Set(headings.map((h) => h.replace(/\s+/g, ' ').trim()))].filter(
    (h) => !GENERIC_HEADING.test(h),
  );
  if (specific.length >= 3) return specific.slice(0, 10);
  const points: Ranked[] = [];
  for (const r of ranked) {
    if (points.length >= 5) break;
    if (points.some((p) => cosine(p.vector, r.vector) > 0.3)) continue;
    points.push(r);
  }
  return points.map((p) => p.unit.text);
}

function clamp(text: string, max: number): string {
  if (text.length <= max) return text;
  // Whole sentences only: drop the last ones until it fits.
  const sentences = splitSentences(text);
  while (sentences.length > 1 && sentences.join(' ').length > max) sentences.pop();
  return sentences.join(' ');
}

/** The offline TextModel: the extractive summary above. */
export function createExtractiveText(): TextModel {
  return {
    provider: 'local-extractive',
    model: EXTRACTIVE_MODEL,
    summarize(input, { signal }) {
      signal.throwIfAborted();
      const started = performance.now();
      const result = summarizeExtractive(input);
      return Promise.resolve({
        provider: 'local-extractive',
        model: EXTRACTIVE_MODEL,
        ...result,
        chunks: 1,
        usage: { ...emptyUsage(), calls: 1, latencyMs: Math.round(performance.now() - started) },
      });
    },
  };
}
