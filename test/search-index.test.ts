/**
 * Search over the whole of a job's texts: the job document keeps excerpts of a document's text and a transcript, and
 * the finished job is indexed again with the whole artifacts, so a word deep in a paper finds it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { createRuntime } from '../src/runtime.js';
import { CORPUS, tempDir } from './helpers.js';

const dataDir = tempDir('search-index');
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

test('a word only in the body of a 14-page paper finds its job; the excerpt alone would not', async () => {
  const runtime = await createRuntime(loadConfig({ DATA_DIR: dataDir }), createLogger('silent'));
  try {
    const doc = await runtime.runner.run({
      jobId: 'paper',
      file: { path: path.join(CORPUS, 'pdf/tracemonkey-paper.pdf') },
    });
    expect(doc.status).toBe('completed');
    const text = fs.readFileSync(path.join(dataDir, 'artifacts', 'paper', 'text.txt'), 'utf8');
    // The longest word of the paper's last part that the job document (excerpt, summary, ...) never mentions.
    const inDocument = JSON.stringify(doc).toLowerCase();
    const word = [
      ...new Set(
        text
          .slice(-4000)
          .toLowerCase()
          .match(/\b[a-z]{7,}\b/g) ?? [],
      ),
    ]
      .filter((w) => !inDocument.includes(w.slice(0, 6)))
      .sort((a, b) => b.length - a.length)[0];
    expect(word).toBeDefined();

    const found = await runtime.store.search(word!, {}, 10);
    expect(found.jobs.map((j) => j.id)).toEqual(['paper']);
    expect(found.matches[0]!.snippet.some((p) => p.match)).toBe(true);
  } finally {
    await runtime.close();
  }
}, 120_000);
