/**
 * OCR of scanned PDF pages, offline: a scan made here (text drawn into a 200 dpi JPEG, wrapped in a PDF without a
 * text layer) is read back, found by search and summarized; in a document that mixes a text page and a scan only the
 * scan is read, in its place; pages over MAX_OCR_PAGES, and every page under `ocr: false`, are reported unread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { describeIssues, InstructionsSchema } from '../src/lib/instructions.js';
import { createLogger } from '../src/lib/log.js';
import type { JobDocument } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { tempDir } from './helpers.js';
import { makePdf, scanPage, wordRecall, wrap } from './scan-fixtures.js';

const PROSE =
  'Harbour records from the winter season describe seventeen vessels that entered the northern basin before the ' +
  'ice closed the channel. The harbour master noted that cargo of timber, salted fish and woollen cloth was ' +
  'unloaded within three days, and that the pilots guided every ship past the shoals without loss. Merchants ' +
  'complained about the price of storage in the warehouses near the lighthouse, and the council agreed to build a ' +
  'second quay on the eastern shore before the spring tides returned.';
const TEXT_PAGE = 'The first page has a real text layer about orchards and apple harvests in the valley.';

const dataDir = tempDir('ocr');
const inputs = path.join(dataDir, 'in');
let runtime: Runtime;

beforeAll(async () => {
  fs.mkdirSync(inputs, { recursive: true });
  const scan = await scanPage(wrap(PROSE, 64), 200);
  fs.writeFileSync(path.join(inputs, 'scan.pdf'), makePdf([scan]));
  fs.writeFileSync(path.join(inputs, 'mixed.pdf'), makePdf([{ lines: wrap(TEXT_PAGE, 60) }, scan]));
  const short = (s: string) => scanPage([s], 200);
  fs.writeFileSync(
    path.join(inputs, 'three-scans.pdf'),
    makePdf([await short('First page of the ledger'), await short('Second page of the ledger'), await short('Third')]),
  );
  runtime = await createRuntime(loadConfig({ DATA_DIR: dataDir, MAX_OCR_PAGES: '2' }), createLogger('silent'));
}, 60_000);

afterAll(async () => {
  await runtime?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const run = (jobId: string, file: string, instructions?: Record<string, unknown>): Promise<JobDocument> =>
  runtime.runner.run({
    jobId,
    file: { path: path.join(inputs, file) },
    instructions: { skip: ['renderPreview'], ...instructions },
  });

const textOf = (jobId: string): string => fs.readFileSync(path.join(dataDir, 'artifacts', jobId, 'text.txt'), 'utf8');

describe('scanned PDF pages are read by OCR', () => {
  test('a clean 200 dpi scan: its words, found by search, summarized', async () => {
    const doc = await run('scan', 'scan.pdf');
    expect(doc.status).toBe('completed');
    const text = doc.results.text!;
    expect(text.ocr).toMatchObject({ engine: 'tesseract.js', languages: ['eng'], pages: [1] });
    expect(text.ocr!.confidence).toBeGreaterThan(80);
    expect(wordRecall(PROSE, textOf('scan'))).toBeGreaterThanOrEqual(0.9);
    // Found by a word of the page, and summarized from it.
    const found = await runtime.store.search('lighthouse', {}, 10);
    expect(found.jobs.map((j) => j.id)).toEqual(['scan']);
    expect(doc.steps.summarize?.status).toBe('succeeded');
    expect(doc.results.summary?.source).toBe('text');
    expect(doc.results.summary?.text).toMatch(/harbour|vessels|merchants/i);
    // Nothing of the saved batches is left once the text is whole.
    expect(fs.existsSync(path.join(dataDir, 'artifacts', 'scan', '.progress'))).toBe(false);
  }, 120_000);

  test('a text page then a scan: both in page order, only the scan read by OCR', async () => {
    const doc = await run('mixed', 'mixed.pdf', { skip: ['renderPreview', 'summarize'] });
    expect(doc.status).toBe('completed');
    expect(doc.results.text!.ocr!.pages).toEqual([2]);
    const [first, second] = textOf('mixed').split('\f');
    expect(first!.replace(/\s+/g, ' ')).toContain(TEXT_PAGE);
    expect(wordRecall(PROSE, second!)).toBeGreaterThanOrEqual(0.9);
  }, 120_000);

  test('pages over MAX_OCR_PAGES are reported, not dropped silently; ocr: false reads none', async () => {
    const capped = await run('capped', 'three-scans.pdf', { skip: ['renderPreview', 'summarize'] });
    expect(capped.results.text!.ocr).toMatchObject({ pages: [1, 2], notRead: [3] });
    expect(capped.results.text!.ocr!.notReadReason).toMatch(/MAX_OCR_PAGES/);
    expect(textOf('capped')).toMatch(/Second page of the ledger/);

    const off = await run('off', 'three-scans.pdf', { skip: ['renderPreview', 'summarize'], ocr: false });
    expect(off.results.text!.ocr).toMatchObject({ pages: [], notRead: [1, 2, 3], notReadReason: 'ocr: false' });
    expect(off.results.text!.chars).toBe(0);
  }, 120_000);

  test("a language without its data package is refused: at start-up, and in a job's instructions", () => {
    expect(() => loadConfig({ DATA_DIR: dataDir, OCR_LANGUAGES: 'eng,xyz' })).toThrow(
      /OCR_LANGUAGES: no OCR language data for xyz: install @tesseract.js-data\/xyz/,
    );
    const asked = InstructionsSchema.safeParse({ ocr: { languages: ['xyz'] } });
    expect(asked.success).toBe(false);
    expect(describeIssues(asked.error!.issues)).toMatch(/ocr.languages: no OCR language data for xyz/);
    expect(InstructionsSchema.safeParse({ ocr: { languages: ['eng'] } }).success).toBe(true);
  });
});
