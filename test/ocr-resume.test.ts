/**
 * A long scan is read by OCR in batches that are saved as they finish. A `process` run is SIGKILLed while it reads a
 * 100-page scan, after some batches are saved; the run started again with the same job id reads only the pages no
 * saved batch holds. A step whose time limit would run out stops between batches and its next attempt goes on from
 * the saved ones.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { BIN, runCli, stepRuns, storedJob, TestState, userEnv } from './helpers.js';
import { makePdf, scanPage } from './scan-fixtures.js';

/** A 4 x 1 inch label per page: quick to render and read, so a hundred of them fit a test. */
const LABEL = { width: 288, height: 72 };
const PAGES = 100;
const pageLine = (n: number): string => `Ledger entry number ${n}`;

let state: TestState;
let scan: string;
/** The first 60 pages, for the time limit. */
let shorter: string;

beforeAll(async () => {
  state = await TestState.create('ocr-resume');
  scan = path.join(state.dataDir, 'ledger.pdf');
  const pages = [];
  for (let n = 1; n <= PAGES; n++) pages.push(await scanPage([pageLine(n)], 200, LABEL));
  fs.writeFileSync(scan, makePdf(pages));
  shorter = path.join(state.dataDir, 'ledger-60.pdf');
  fs.writeFileSync(shorter, makePdf(pages.slice(0, 60)));
}, 60_000);

afterAll(async () => {
  await state?.drop();
});

const savedBatches = (jobId: string): string[] => {
  const dir = path.join(state.dataDir, 'artifacts', jobId, '.progress');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^ocr-.*\.json$/.test(f)) : [];
};
const pagesIn = (batches: string[]): number =>
  batches.reduce((n, b) => {
    const [, first, last] = /-(\d+)-(\d+)\.json$/.exec(b)!;
    return n + Number(last) - Number(first) + 1;
  }, 0);

/** Every page's line, in page order, in the document's text. */
function expectAllPagesInOrder(jobId: string, count = PAGES): void {
  const text = fs.readFileSync(path.join(state.dataDir, 'artifacts', jobId, 'text.txt'), 'utf8');
  const pages = text.split('\f').map((p) => p.replace(/\s+/g, ' ').trim());
  expect(pages).toHaveLength(count);
  const right = pages.filter((p, i) => p.includes(`number ${i + 1}`)).length;
  expect(right).toBeGreaterThanOrEqual(count * 0.95);
}

test('a 100-page scan killed mid-OCR resumes at the next batch, not at page 1', { timeout: 300_000 }, async () => {
  const jobId = 'ledger-killed';
  const child = spawn(BIN, ['process', '--job-id', jobId, scan], {
    env: { ...userEnv(), ...state.env, LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const deadline = Date.now() + 240_000;
  while (savedBatches(jobId).length < 2) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the run never saved two batches');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  // What the killed run had read and saved: the next run must not read these pages again.
  const saved = pagesIn(savedBatches(jobId));
  expect(saved).toBeGreaterThanOrEqual(20);
  expect(saved).toBeLessThan(PAGES);
  // The job showed how far the reading was, page by page (a percent of the pages to read, thinned to one write a
  // second): at least the first saved batch's worth, never all of it.
  const progress = (await storedJob(state, jobId))?.steps.extractText?.progress;
  expect(progress).toBeGreaterThanOrEqual(10);
  expect(progress).toBeLessThan(100);

  const res = await runCli(['process', '--json', '--job-id', jobId, scan], state.env, 240_000);
  expect(res.code, res.stderr).toBe(0);
  const doc = JSON.parse(res.stdout) as JobDocument;
  expect(doc.status).toBe('completed');
  const ocr = doc.results.text!.ocr!;
  expect(ocr.pages).toEqual(Array.from({ length: PAGES }, (_, i) => i + 1));
  // Pages read across the kill: the saved ones once, the rest (PAGES - saved) by the second run.
  expect(ocr.resumedPages).toBe(saved);
  expectAllPagesInOrder(jobId);
  const runs = (await stepRuns(state, jobId)).filter((r) => r.step === 'extractText').map((r) => r.status);
  expect(runs).toEqual(['running', 'succeeded']);
  // The saved batches are gone once the text is whole.
  expect(savedBatches(jobId)).toEqual([]);
});

test(
  'a step that would overrun its time limit stops between batches; the next attempt goes on',
  { timeout: 400_000 },
  async () => {
    // How many pages fit a time limit depends on how busy the machine is, so the limit is searched for: one that is
    // too long reads all 60 pages in one attempt, one that is too short runs out of attempts (or of time within the
    // first batch, which always runs). Between the two, the step must stop between batches and go on in the next
    // attempt from the saved ones; the first limit tried suits a quiet machine (about 0.15 s a page).
    let tooShort = 0;
    let tooLong = Infinity;
    let limitMs = 6_000;
    const tried: string[] = [];
    for (let round = 1; round <= 6; round++) {
      const jobId = `ledger-timed-${round}`;
      const res = await runCli(
        ['process', '--json', '--job-id', jobId, shorter],
        { ...state.env, STEP_TIMEOUTS: `extractText=${Math.round(limitMs)}`, RETRY_BACKOFF_MS: '100' },
        240_000,
      );
      const doc = JSON.parse(res.stdout) as JobDocument;
      const step = doc.steps.extractText!;
      tried.push(`${Math.round(limitMs)} ms: ${doc.status}, ${step.attempts} attempts`);
      if (doc.status === 'completed' && step.attempts > 1) {
        expect(res.code, res.stderr).toBe(0);
        expect(doc.results.text!.ocr!.resumedPages).toBeGreaterThan(0);
        expect(doc.results.text!.ocr!.pages).toHaveLength(60);
        expectAllPagesInOrder(jobId, 60);
        // Every attempt before the last stopped on its own, between batches, with a retryable TIMEOUT.
        const runs = (await stepRuns(state, jobId)).filter((r) => r.step === 'extractText');
        expect(runs.at(-1)!.status).toBe('succeeded');
        for (const run of runs.slice(0, -1)) expect(run.errorCode).toBe('TIMEOUT');
        return;
      }
      if (doc.status === 'completed') tooLong = limitMs;
      else {
        // Out of attempts: it failed on the time limit, not on anything else.
        expect(step.error?.code, JSON.stringify(step.error)).toBe('TIMEOUT');
        tooShort = limitMs;
      }
      limitMs = tooLong === Infinity ? limitMs * 2 : tooShort === 0 ? limitMs / 2 : Math.sqrt(tooShort * tooLong);
    }
    throw new Error(`no time limit made the step stop and go on: ${tried.join('; ')}`);
  },
);
