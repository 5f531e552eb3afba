/**
 * Full-text search over jobs, the part both stores share: what a job is found by (its file name, and every word it
 * produced: labels, caption, summary, transcript, document text), the query language, and the snippet format.
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
/** Jobs one page of results holds (what GET /jobs allows is cut to this), and how deep pages go. */
export const MAX_SEARCH_PAGE = 50;
export const MAX_SEARCH_DEPTH = 1000;

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
