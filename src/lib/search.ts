/**
 * Full-text search over jobs, the part both stores share: what a job is found by (its file name, and every word it
 * produced: labels, caption, summary, transcript, document text), the query language, and the snippet format. The
 * names of the people a job's faces are in are indexed beside them by the people stores, as people change.
 *
 * Query language, the same on SQLite (FTS5) and PostgreSQL (tsvector): words (letters, digits and combining marks),
 * all of which must occur in a job; a word of three or more characters ending in `*` matches as a prefix. Anything
 * else in the query (quotes, operators, punctuation) separates words and has no other meaning, so no input can reach
 * either engine's own query syntax. Words are stemmed as English ("dogs" finds "dog"); no word is a stop word. In the
 * indexed text too, the characters that join PostgreSQL's compound tokens (`. _ - @ / : +`) separate words, so
 * `2.5.1`, `IMG_2041` and `a@b.org` are found by their parts on both. Where the two differ: SQLite ignores accents
 * (`cafe` finds `café`), PostgreSQL does not; and the stemmers differ on some words (porter, snowball).
 */
import path from 'node:path';
import type { FileInfo, JobInput, Results } from './types.js';

/** What one job is indexed under. */
export interface SearchText {
  name: string;
  body: string;
}

/** Characters indexed per job: an hour of speech is about 50,000; PostgreSQL's tsvector holds at most 1 MB. */
export const MAX_INDEXED_CHARS = 200_000;
/** Words a query may have; more only slow the query down. */
export const MAX_QUERY_WORDS = 8;
/** A prefix (`word*`) must have this many characters: `a*` matches most of the index, and costs as much. */
export const MIN_PREFIX_CHARS = 3;
/** Jobs one page of results holds (what GET /jobs allows is cut to this). */
export const MAX_SEARCH_PAGE = 50;
/**
 * How deep pages go, and so how many jobs a search ranks: the newest this many of those that match. Ranking reads
 * each candidate's words (bm25, ts_rank_cd): over every match, a broad query cost seconds on a few thousand jobs.
 */
export const MAX_SEARCH_DEPTH = 1000;
/**
 * Words of the index a prefix may stand for, on SQLite: FTS5 merges the positions of every one of them before it
 * finds the first match. A broader prefix is refused (type more of the word). PostgreSQL's GIN index reads a
 * prefix's words as one scan without positions, and keeps no list of its words to count them: it has no such limit.
 */
export const MAX_PREFIX_TERMS = 1000;
/** Characters of a job's text (from the start) PostgreSQL's snippet is cut from; see snippetOf for SQLite's. */
export const SNIPPET_CHARS = 20_000;
/** Words in a snippet. */
export const SNIPPET_WORDS = 16;

/** Where the engines mark a match inside a snippet; control characters are removed from indexed text. */
export const MATCH_START = '\u0002';
export const MATCH_END = '\u0003';

/** A piece of a snippet: matched words have `match: true`. */
export interface SnippetPart {
  text: string;
  match: boolean;
}

/** One word of a query: letters and digits; `prefix` when it ended in `*`. */
export interface QueryWord {
  word: string;
  prefix: boolean;
}

/** The words of a user's query, or an empty list when it has none. */
export function queryWords(q: string): QueryWord[] {
  const words: QueryWord[] = [];
  for (const m of q.normalize('NFKC').matchAll(/([\p{L}\p{M}\p{N}]+)(\*)?/gu)) {
    const word = m[1]!.toLowerCase();
    words.push({ word, prefix: m[2] === '*' && [...word].length >= MIN_PREFIX_CHARS });
    if (words.length === MAX_QUERY_WORDS) break;
  }
  return words;
}

/** The query for SQLite FTS5: every word quoted (a literal), all required. */
export function ftsQuery(words: QueryWord[]): string {
  return words.map((w) => `"${w.word}"${w.prefix ? '*' : ''}`).join(' ');
}

/** The query for PostgreSQL's to_tsquery: the words (letters and digits only) joined by `&`, `:*` for a prefix. */
export function tsQuery(words: QueryWord[]): string {
  return words.map((w) => `'${w.word}'${w.prefix ? ':*' : ''}`).join(' & ');
}

/** Control characters out (the snippet markers among them). */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
}

/** A file name as words: `IMG_2041.jpeg` is found by `img` and `2041`. */
function nameWords(name: string): string {
  return clean(name).replace(JOINERS, ' ');
}

/**
 * Characters PostgreSQL's parser keeps inside one token (hosts, e-mail addresses, versions, paths, decimals): the
 * tsvector is built from the text with these as spaces, as the query's words are split at them.
 */
export const JOINERS = /[._@/:+-]+/g;
/** JOINERS as a PostgreSQL regular expression. */
export const PG_JOINERS = '[._@/:+-]+';

/** The file's name as the job shows it. */
export function displayName(file: JobInput['file'], fileInfo: FileInfo | null): string {
  return fileInfo?.name ?? file.name ?? path.basename(file.path);
}

/**
 * What a job is found by, from its results. `fullTexts` are the whole transcript and document text (the results hold
 * only excerpts of them), when the caller read them.
 */
export function searchTextOf(name: string, results: Results, fullTexts: string[] = []): SearchText {
  const { analysis, summary, transcript, text } = results;
  const parts = [
    ...(analysis?.labels ?? []).map((l) => l.name),
    ...(analysis?.tags ?? []),
    analysis?.caption,
    analysis?.description,
    analysis?.text,
    summary?.title,
    summary?.text,
    ...(summary?.keyPoints ?? []),
    // The excerpts, unless the whole texts are given.
    ...(fullTexts.length > 0 ? fullTexts : [transcript?.text, text?.excerpt]),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  return {
    name: nameWords(name).slice(0, 1000),
    body: clean(parts.join('\n')).slice(0, MAX_INDEXED_CHARS),
  };
}

/** A snippet from either engine, marked with MATCH_START/MATCH_END, as parts. */
export function snippetParts(marked: string): SnippetPart[] {
  const parts: SnippetPart[] = [];
  let rest = marked.replace(/\s+/g, ' ').trim();
  while (rest.length > 0) {
    const start = rest.indexOf(MATCH_START);
    if (start < 0) {
      parts.push({ text: rest, match: false });
      break;
    }
    if (start > 0) parts.push({ text: rest.slice(0, start), match: false });
    const end = rest.indexOf(MATCH_END, start);
    const stop = end < 0 ? rest.length : end;
    parts.push({ text: rest.slice(start + 1, stop), match: true });
    rest = rest.slice(stop + 1);
  }
  return parts.filter((p) => p.text.length > 0);
}

/**
 * A snippet from each column's whole text with every match marked (FTS5's highlight): the SNIPPET_WORDS words that
 * hold the most different matched words, in the column that has most, `…` where it is cut. FTS5's own snippet scores
 * every match against every other one: 40 ms for one 60,000-character text with eight broad prefixes, seconds for a
 * page; this is one pass over the text.
 */
export function snippetOf(columns: string[]): string {
  let best: { score: number; text: string } = { score: -1, text: '' };
  for (const marked of columns) {
    const fragment = bestFragment(marked);
    if (fragment.score > best.score) best = fragment;
  }
  return best.text;
}

interface Token {
  start: number;
  end: number;
  /** The matched word in lower case; null when the token is not inside a match. */
  match: string | null;
}

/** A token as FTS5's unicode61 cuts them (letters, marks, digits, private use), or a match marker. */
// eslint-disable-next-line no-control-regex
const TOKEN_OR_MARKER = /[\u0002\u0003]|[\p{L}\p{M}\p{N}\p{Co}]+/gu;
const TOKEN = /[\p{L}\p{M}\p{N}\p{Co}]/gu;

/**
 * The window of SNIPPET_WORDS tokens of `marked` with the most different matches (the first such), centred on them.
 * Looked for in the SNIPPET_CHARS from just before the first match: a text can have 200,000 characters.
 */
function bestFragment(marked: string): { score: number; text: string } {
  const regionStart = Math.max(0, marked.indexOf(MATCH_START) - 1000);
  const tokens: Token[] = [];
  let inside = false;
  const scan = new RegExp(TOKEN_OR_MARKER);
  scan.lastIndex = regionStart;
  for (let m = scan.exec(marked); m && m.index < regionStart + SNIPPET_CHARS; m = scan.exec(marked)) {
    if (m[0] === MATCH_START) inside = true;
    else if (m[0] === MATCH_END) inside = false;
    else tokens.push({ start: m.index, end: m.index + m[0].length, match: inside ? m[0].toLowerCase() : null });
  }
  if (tokens.length === 0) return { score: 0, text: '' };
  const size = Math.min(SNIPPET_WORDS, tokens.length);
  // Sliding window: how often each different matched word occurs in it.
  const inWindow = new Map<string, number>();
  const count = (t: Token | undefined, by: number): void => {
    if (!t?.match) return;
    const n = (inWindow.get(t.match) ?? 0) + by;
    if (n === 0) inWindow.delete(t.match);
    else inWindow.set(t.match, n);
  };
  let score = -1;
  let from = 0;
  for (let i = 0; i < tokens.length; i++) {
    count(tokens[i], 1);
    count(tokens[i - size], -1);
    if (i >= size - 1 && inWindow.size > score) {
      score = inWindow.size;
      from = i - size + 1;
    }
  }
  // Centre the window's matches in it, as FTS5 does.
  const matched = tokens.slice(from, from + size).flatMap((t, k) => (t.match ? [from + k] : []));
  if (matched.length > 0) {
    const spare = size - (matched.at(-1)! - matched[0]! + 1);
    from = Math.max(0, Math.min(tokens.length - size, matched[0]! - Math.floor(spare / 2)));
  }
  const first = tokens[from]!;
  const last = tokens[from + size - 1]!;
  const after = new RegExp(TOKEN);
  after.lastIndex = last.end;
  const text =
    (first.start > tokens[0]!.start || regionStart > 0 ? '…' : '') +
    // A match the window cuts keeps its markers.
    (first.match ? MATCH_START : '') +
    marked.slice(first.start, last.end) +
    (last.match ? MATCH_END : '') +
    (after.test(marked) ? '…' : '');
  return { score, text };
}
