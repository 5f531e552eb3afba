/**
 * The job page's video player in Debian's Chromium: an MKV (MPEG-4 Part 2, MP3, a subtitle track) is transcoded, and
 * the page plays the rendition (readyState >= 2, currentTime advances), with the transcript loaded as its captions
 * track and the storyboard's frame shown over the seek bar; the results come before the workflow graph; a web-ready
 * MP4 plays from its original. Seeking is served by range requests (206).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import {
  dropPrefix,
  serviceOn,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
  type ServiceProcess,
} from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const prefix = uniquePrefix('playback-ui');
let dir: string;
let state: TestState;
let service: ServiceProcess;
let base: string;
let browser: Browser;
let lecture: string;
let ready: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium`);
  dir = tempDir('playback-ui');
  const { ffmpeg } = resolveToolPaths();
  const srt = path.join(dir, 'lecture.srt');
  fs.writeFileSync(
    srt,
    '1\n00:00:00,000 --> 00:00:03,000\nThe first caption of the lecture.\n\n' +
      '2\n00:00:03,000 --> 00:00:06,000\nThe second caption of the lecture.\n',
  );
  lecture = path.join(dir, 'lecture.mkv');
  execFileSync(ffmpeg, [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=6'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=6', '-i', srt],
    ...['-map', '0:v', '-map', '1:a', '-map', '2:s', '-c:v', 'mpeg4', '-q:v', '5', '-c:a', 'libmp3lame'],
    ...['-c:s', 'srt', lecture],
  ]);
  ready = path.join(dir, 'ready.mp4');
  execFileSync(ffmpeg, [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=4'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=48000:duration=4'],
    ...[
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-movflags',
      '+faststart',
      ready,
    ],
  ]);
  state = await TestState.create('playback-ui');
  ({ service, base } = await serviceOn(state, prefix, { INPUT_ROOTS: dir }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function run(file: string): Promise<JobDocument> {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: file } }),
  });
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  return waitFor(
    `job ${id} to complete`,
    async () => {
      const doc = await storedJob(state, id);
      return doc && ['completed', 'completed_with_errors', 'failed'].includes(doc.status) && doc;
    },
    180_000,
  );
}

interface VideoState {
  readyState: number;
  currentTime: number;
  src: string;
  tracks: { kind: string; mode: string; cues: number }[];
}

/** The parts of an HTMLVideoElement the test reads (the test is compiled without the DOM's types). */
interface VideoLike {
  readyState: number;
  currentTime: number;
  currentSrc: string;
  muted: boolean;
  play(): Promise<void>;
  pause(): void;
  textTracks: ArrayLike<{ kind: string; mode: string; cues: { length: number } | null }>;
}

const videoState = (page: Page): Promise<VideoState> =>
  page.locator('#player video').evaluate((el) => {
    const v = el as unknown as VideoLike;
    return {
      readyState: v.readyState,
      currentTime: v.currentTime,
      src: v.currentSrc,
      tracks: Array.from(v.textTracks).map((t) => ({ kind: t.kind, mode: t.mode, cues: t.cues?.length ?? 0 })),
    };
  });

const onVideo = (page: Page, action: 'play' | 'pause'): Promise<void> =>
  page.locator('#player video').evaluate(async (el, what) => {
    const v = el as unknown as VideoLike;
    v.muted = true;
    if (what === 'play') await v.play();
    else v.pause();
  }, action);

test(
  'the job page plays the rendition with captions and a storyboard on its seek bar',
  { timeout: 300_000 },
  async () => {
    const doc = await run(lecture);
    expect(doc.status).toBe('completed');
    expect(doc.results.video?.url).toBe(`/jobs/${doc.id}/artifacts/video.mp4`);
    expect(doc.results.transcript?.vttUrl).toBeTruthy();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    const ranges: number[] = [];
    page.on('response', (res) => {
      if (res.url().endsWith('/artifacts/video.mp4')) ranges.push(res.status());
    });
    await page.goto(`${base}/#/jobs/${doc.id}`);
    await page
      .locator('#player video')
      .waitFor({ timeout: 30_000 })
      .catch(async (err: unknown) => {
        throw new Error(`${String(err)}\nconsole: ${errors.join('\n')}\npage: ${await page.innerHTML('#job-view')}`);
      });
    // Results before the workflow graph.
    const [player, graph] = [await page.locator('#player').boundingBox(), await page.locator('#graph').boundingBox()];
    expect(player!.y).toBeLessThan(graph!.y);
    await expect.poll(async () => (await videoState(page)).readyState, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    // The captions track is the transcript, loaded with its cues.
    await expect
      .poll(async () => (await videoState(page)).tracks, { timeout: 30_000 })
      .toEqual([{ kind: 'captions', mode: 'showing', cues: 2 }]);
    await onVideo(page, 'play');
    await expect.poll(async () => (await videoState(page)).currentTime, { timeout: 30_000 }).toBeGreaterThan(0.5);
    expect((await videoState(page)).src).toBe(`${base}/jobs/${doc.id}/artifacts/video.mp4`);
    // Chromium asked for ranges, and got them.
    expect(ranges).toContain(206);
    // The storyboard: hovering the seek bar shows the frame of that time from the sprite.
    const bar = page.locator('#player .scrub');
    const box = (await bar.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
    const preview = page.locator('#player .scrub-preview');
    await expect.poll(() => preview.isVisible(), { timeout: 10_000 }).toBe(true);
    const sb = doc.results.storyboard!;
    const tile = 5; // 0.9 of 6 s, one tile a second
    expect(await preview.getAttribute('data-tile')).toBe(
      `${(tile % sb.columns) * sb.tileWidth},${Math.floor(tile / sb.columns) * sb.tileHeight}`,
    );
    expect(await preview.getAttribute('style')).toContain('/artifacts/storyboard.jpg');
    // A click on the bar seeks there.
    await onVideo(page, 'pause');
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height / 2);
    await expect.poll(async () => (await videoState(page)).currentTime, { timeout: 10_000 }).toBeCloseTo(3, 0);
    expect(errors, errors.join('\n')).toEqual([]);
    await page.close();
  },
);

test('a web-ready MP4 plays from its original', { timeout: 300_000 }, async () => {
  const doc = await run(ready);
  expect(doc.steps.transcodeVideo?.status).toBe('skipped');
  const page = await browser.newPage();
  await page.goto(`${base}/#/jobs/${doc.id}`);
  await page.locator('#player video').waitFor({ timeout: 30_000 });
  await expect.poll(async () => (await videoState(page)).readyState, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
  expect((await videoState(page)).src).toBe(`${base}/jobs/${doc.id}/original`);
  await page.close();
});
