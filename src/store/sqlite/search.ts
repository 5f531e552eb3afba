/**
 * A search in SQLite, as a search thread runs it on a read-only connection of its own (search-threads.ts), in one
 * read transaction: each prefix checked against the index's word list, the newest MAX_SEARCH_DEPTH jobs that match,
 * those ranked by bm25, and the page's jobs alone read with their matches marked for the snippet. Every statement
 * reads a bounded number of jobs' words; the match itself is bounded by MAX_PREFIX_TERMS and the query's words.
 */
import type Database from 'better-sqlite3';
import {
  ftsQuery,
  MATCH_END,
  MATCH_START,
  MAX_PREFIX_TERMS,
  MAX_SEARCH_DEPTH,
  snippetOf,
  snippetParts,
  type QueryWord,
} from '../../lib/search.js';
import type { JobDocument } from '../../lib/types.js';
import { encodeSearchCursor, SearchRefused, type JobFilter, type SearchPage } from '../job-store.js';
import { duplicatesFilter } from '../duplicates.js';
import { SEARCH_TOKENIZER } from './migrations.js';

/** One search, as the store sends it to a search thread (the cursor already read). */
export interface SearchRequest {
  words: QueryWord[];
  filter: JobFilter;
  limit: number;
  offset: number;
}

/** A search thread's answer. */
export type SearchReply =
  { page: SearchPage } | { refused: { reason: SearchRefused['reason']; message: string } } | { error: string };

/** Searches on `db`, a connection used for nothing else (it gets temporary tables of its own). */
export function searcher(db: Database.Database): (request: SearchRequest) => SearchPage {
  // What the tokenizer makes of a word (a one-row index and its word list), and the search index's word list.
  db.exec(`
    CREATE VIRTUAL TABLE temp.search_probe USING fts5(word, tokenize = "${SEARCH_TOKENIZER}");
    CREATE VIRTUAL TABLE temp.search_probe_terms USING fts5vocab(temp, search_probe, instance);
    CREATE VIRTUAL TABLE temp.search_terms USING fts5vocab(main, job_search, row);
  `);
  const statements = new Map<string, Database.Statement>();
  const sql = (text: string): Database.Statement => {
    let statement = statements.get(text);
    if (!statement) statements.set(text, (statement = db.prepare(text)));
    return statement;
  };

  /** TOO_BROAD when `word*` stands for more than MAX_PREFIX_TERMS words of the index (stemmed, as FTS5 does). */
  const checkPrefix = (word: string): void => {
    sql('INSERT INTO temp.search_probe (rowid, word) VALUES (1, ?)').run(word);
    const probe = sql('SELECT term FROM temp.search_probe_terms ORDER BY offset LIMIT 1').get() as
      { term: string } | undefined;
    sql('DELETE FROM temp.search_probe').run();
    if (!probe) return;
    const { n } = sql(
      'SELECT count(*) AS n FROM (SELECT 1 FROM temp.search_terms WHERE term >= ? AND term < ? LIMIT ?)',
    ).get(probe.term, `${probe.term}\u{10ffff}`, MAX_PREFIX_TERMS + 1) as { n: number };
    if (n > MAX_PREFIX_TERMS)
      throw new SearchRefused(
        'TOO_BROAD',
        `"${word}*" stands for more than ${MAX_PREFIX_TERMS} words of the index; type more of the word`,
      );
  };

  const search = ({ words, filter, limit, offset }: SearchRequest): SearchPage => {
    for (const w of words) if (w.prefix) checkPrefix(w.word);
    const match = ftsQuery(words);
    const where: string[] = ['job_search MATCH ?'];
    const args: string[] = [match];
    for (const [column, value] of [
      ['j.status', filter.status],
      ['j.file_type', filter.fileType],
      ['j.user_id', filter.user],
    ] as const) {
      if (value === undefined) continue;
      where.push(`${column} = ?`);
      args.push(value);
    }
    if (filter.duplicates !== undefined) where.push(duplicatesFilter('j.id', filter.duplicates));
    // The candidates: no word of any job is read here, only which jobs match.
    const candidates = sql(
      `SELECT job_search.rowid AS row, j.id FROM job_search
         JOIN job_search_rows r ON r.row = job_search.rowid JOIN jobs j ON j.id = r.job_id
        WHERE ${where.join(' AND ')} ORDER BY j.created_at DESC, j.id DESC LIMIT ?`,
    ).all(...args, MAX_SEARCH_DEPTH) as { row: number; id: string }[];
    // bm25 (lower is better; a word in the name or a person's name weighs four times one in the text) for those
    // alone; `+` keeps the rows out of FTS5's own lookup, which would run the whole match again for each.
    const ranks = new Map(
      (
        sql(
          `SELECT rowid AS row, bm25(job_search, 4.0, 1.0, 4.0) AS rank FROM job_search
            WHERE job_search MATCH ? AND +rowid IN (SELECT value FROM json_each(?))`,
        ).all(match, JSON.stringify(candidates.map((c) => c.row))) as { row: number; rank: number }[]
      ).map((r) => [r.row, r.rank]),
    );
    // Best first; equal ranks newest first (the candidates' order: the sort is stable).
    const ranked = candidates.sort((a, b) => ranks.get(a.row)! - ranks.get(b.row)!);
    const page = ranked.slice(offset, offset + limit);
    const rows = JSON.stringify(page.map((c) => c.row));
    const marked = new Map(
      (
        sql(
          `SELECT rowid AS row, highlight(job_search, 0, ?, ?) AS name, highlight(job_search, 1, ?, ?) AS body,
                  highlight(job_search, 2, ?, ?) AS people
             FROM job_search WHERE job_search MATCH ? AND +rowid IN (SELECT value FROM json_each(?))`,
        ).all(MATCH_START, MATCH_END, MATCH_START, MATCH_END, MATCH_START, MATCH_END, match, rows) as {
          row: number;
          name: string;
          body: string;
          people: string | null;
        }[]
      ).map((r) => [r.row, snippetOf([r.name, r.body, r.people ?? ''])]),
    );
    const docs = new Map(
      (
        sql('SELECT id, doc FROM jobs WHERE id IN (SELECT value FROM json_each(?))').all(
          JSON.stringify(page.map((c) => c.id)),
        ) as { id: string; doc: string }[]
      ).map((r) => [r.id, JSON.parse(r.doc) as JobDocument]),
    );
    return {
      jobs: page.map((c) => docs.get(c.id)!),
      matches: page.map((c) => ({ id: c.id, snippet: snippetParts(marked.get(c.row) ?? '') })),
      nextCursor:
        ranked.length > offset + limit && offset + limit < MAX_SEARCH_DEPTH ? encodeSearchCursor(offset + limit) : null,
    };
  };
  // One snapshot for every statement of a search: a job indexed meanwhile cannot be ranked and then not found.
  const inTransaction = db.transaction(search);
  return (request) => inTransaction(request);
}
