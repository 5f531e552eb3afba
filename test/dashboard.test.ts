/**
 * The dashboard in a real browser: Playwright drives Debian's Chromium headless against the running service, uploads
 * a corpus file by the dashboard's file picker, watches the job complete and the graph's nodes marked done. The
 * screenshot is kept in test-artifacts/ (the README shows one).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { CORPUS, dropPrefix, ROOT, ServiceProcess, tempDir, TEST_REDIS_URL, uniquePrefix } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const prefix = uniquePrefix('dashboard');
let dataDir: string;
let service: ServiceProcess;
let browser: Browser;
let base: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
  dataDir = tempDir('dashboard');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = await new ServiceProcess([], {
    DATA_DIR: dataDir,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
  }).ready();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('upload through the dashboard, watch the job complete with its graph coloured', { timeout: 300_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const external: string[] = [];
  page.on('request', (req) => {
    if (!req.url().startsWith(base)) external.push(req.url());
  });
  const consoleErrors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  await page.goto(base);
  await page.setInputFiles('#files', path.join(CORPUS, 'video/with-subtitles.mkv'));
  await expect.poll(() => page.textContent('#upload-status'), { timeout: 15_000 }).toMatch(/queued/);
  const row = page.locator('tr.job', { hasText: 'with-subtitles.mkv' });
  await row.first().waitFor({ timeout: 15_000 });
  await row.first().click();
  await page.locator('#job-status .status.completed').waitFor({ timeout: 60_000 });
  // The graph is drawn and its nodes carry their step's final status.
  await expect.poll(() => page.getAttribute('#graph', 'data-status'), { timeout: 15_000 }).toBe('completed');
  for (const step of ['validate', 'extractMetadata', 'posterFrame', 'extractAudio', 'transcribe']) {
    expect(await page.getAttribute(`#graph [id*="flowchart-${step}-"]`, 'data-step-status'), step).toBe('succeeded');
  }
  expect(await page.locator('#graph svg').count()).toBe(1);
  expect(await page.locator('#thumbnails img').count()).toBeGreaterThan(0);
  expect(await page.textContent('#texts')).toContain('Subtitles can serve as a transcript');
  const shots = path.join(ROOT, 'test-artifacts');
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'dashboard-job.png'), fullPage: true });
  await page.goto(`${base}/#/`);
  await row.first().waitFor();
  await page.screenshot({ path: path.join(shots, 'dashboard-list.png') });
  // It works offline: nothing was requested from anywhere but this server.
  expect(external).toEqual([]);
  expect(consoleErrors, consoleErrors.join('\n')).toEqual([]);
});
