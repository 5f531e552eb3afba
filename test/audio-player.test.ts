/**
 * The audio player of the dashboard in Debian's Chromium (headless, through Playwright) against the running service:
 * an uploaded recording's job page draws its waveform on a canvas, and a click on the waveform seeks the <audio>.
 */
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CORPUS } from './helpers.js';
import { browserService, type BrowserService } from './support/browser-service.js';

let running: BrowserService;
let browser: Browser;
let base: string;

beforeAll(async () => {
  // The player is what this file is about; a transcript would only add time.
  running = await browserService('audio-player', { DISABLED_STEPS: 'transcribe,summarize' });
  ({ browser, base } = running);
}, 90_000);

afterAll(async () => {
  await running?.close();
});

test('an audio job: the waveform is drawn, a click on it seeks the player, the list shows its PNG', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  await page.goto(base);
  await page.setInputFiles('#files', path.join(CORPUS, 'audio/voice-memo.wav'));
  const row = page.locator('tr.job', { hasText: 'voice-memo.wav' }).first();
  await row.waitFor({ timeout: 20_000 });
  await row.click();
  await page.locator('#job-status .status.completed').waitFor({ timeout: 90_000 });

  const canvas = page.locator('#waveform canvas');
  await canvas.waitFor({ timeout: 15_000 });
  // Drawn: many of the canvas's pixels are painted (the speech fills a good part of it), and not all of them.
  const painted = (): Promise<number> =>
    canvas.evaluate((c) => {
      const el = c as unknown as {
        width: number;
        height: number;
        getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
      };
      const { data } = el.getContext('2d').getImageData(0, 0, el.width, el.height);
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n / (el.width * el.height);
    });
  await expect.poll(painted, { timeout: 10_000 }).toBeGreaterThan(0.05);
  expect(await painted()).toBeLessThan(0.95);
  expect(await page.textContent('#loudness')).toMatch(
    /Loudness -?\d+\.\d LUFS · range .* · true peak .* · silence \d+ %/,
  );

  // The player plays the job's audio copy. A click at 3/4 of the waveform before it has loaded anything sets where
  // it starts (the media element keeps it as its start position).
  const audio = page.locator('#media audio');
  expect(await audio.getAttribute('src')).toMatch(/\/artifacts\/audio\.mp3$/);
  const jobId = /#\/jobs\/(\S+)$/.exec(page.url())![1]!;
  const job = (await (await fetch(`${base}/jobs/${jobId}`)).json()) as {
    results: { waveform: { durationSec: number } };
  };
  const duration = job.results.waveform.durationSec;
  expect(duration).toBeGreaterThan(4);
  const currentTime = (): Promise<number> =>
    audio.evaluate((a) => (a as unknown as { currentTime: number }).currentTime);
  expect(await currentTime()).toBe(0);
  const box = (await canvas.boundingBox())!;
  await canvas.click({ position: { x: box.width * 0.75, y: box.height / 2 } });
  await expect.poll(currentTime, { timeout: 10_000 }).toBeGreaterThan(duration * 0.7);
  expect(await currentTime()).toBeLessThan(duration * 0.8);

  // Once loaded, a click seeks the playing audio, where the server answers range requests (206): Chromium seeks
  // only within what it can ask for again. Artifacts served whole give `seekable` [0, 0].
  const ranged = await fetch(`${base}/jobs/${jobId}/artifacts/audio.mp3`, { headers: { range: 'bytes=0-1' } });
  if (ranged.status === 206) {
    await audio.evaluate((a) => (a as unknown as { load(): void }).load());
    await expect
      .poll(() => audio.evaluate((a) => (a as unknown as { seekable: { length: number } }).seekable.length), {
        timeout: 15_000,
      })
      .toBeGreaterThan(0);
    await canvas.click({ position: { x: box.width * 0.25, y: box.height / 2 } });
    await expect.poll(currentTime, { timeout: 10_000 }).toBeGreaterThan(duration * 0.2);
    expect(await currentTime()).toBeLessThan(duration * 0.3);
  }

  // The list shows the waveform PNG in the picture column of the audio job.
  await page.goto(`${base}/#/`);
  const img = page.locator('tr.job', { hasText: 'voice-memo.wav' }).first().locator('td.thumb img');
  await expect
    .poll(() =>
      img.evaluate((el) => {
        const loaded = el as unknown as { complete: boolean; naturalWidth: number; src: string };
        return loaded.complete ? `${loaded.naturalWidth} ${loaded.src.split('/').pop()}` : '';
      }),
    )
    .toBe('400 waveform.png');
  expect(consoleErrors, consoleErrors.join('\n')).toEqual([]);
}, 180_000);
