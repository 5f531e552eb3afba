/**
 * The dashboard in a real browser: Playwright drives Debian's Chromium headless against the running service, uploads
 * a corpus file by the dashboard's file picker, watches the job complete and the graph's nodes marked done. The
 * screenshot is kept in test-artifacts/ (the README shows one).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import type { JobDocument } from '../src/lib/types.js';
import { CORPUS, dropPrefix, ROOT, ServiceProcess, tempDir, TEST_REDIS_URL, uniquePrefix } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const prefix = uniquePrefix('dashboard');
const HOST = 'media.example';
let dataDir: string;
let service: ServiceProcess;
let browser: Browser;
let base: string;
let port: number;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
  dataDir = tempDir('dashboard');
  port = await freePort();
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
      // A name that is not localhost: browsers upgrade such a page's subresources when the CSP asks them to.
      `--host-resolver-rules=MAP ${HOST} 127.0.0.1`,
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Drops corpus files on the dashboard's picker; the job ids its upload lines report, in the files' order. */
async function dropFiles(page: Page, files: string[]): Promise<string[]> {
  await page.setInputFiles(
    '#files',
    files.map((f) => path.join(CORPUS, f)),
  );
  const lines = page.locator('#upload-status li');
  const expected = files.map((f): unknown =>
    expect.stringMatching(new RegExp(`^${escape(path.basename(f))}: job \\S+ queued$`)),
  );
  await expect.poll(() => lines.allTextContents(), { timeout: 20_000 }).toEqual(expected);
  return (await lines.allTextContents()).map((l) => /job (\S+) queued/.exec(l)![1]!);
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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
  // The image and PDF branches do not apply to a video: greyed out, not white like steps still to come.
  for (const step of ['generateThumbnails', 'analyzeImage', 'renderPreview', 'extractText']) {
    expect(await page.getAttribute(`#graph [id*="flowchart-${step}-"]`, 'data-step-status'), step).toBe('unused');
  }
  expect(await page.locator('#graph svg').count()).toBe(1);
  // Labels are drawn at the page's text size, not shrunk to fit a column.
  const label = page.locator('#graph [id*="flowchart-extractMetadata-"] .nodeLabel').first();
  expect((await label.boundingBox())!.height).toBeGreaterThanOrEqual(14);
  // One picture (the poster frame at its size), not every thumbnail side by side; the audio can be played.
  expect(await page.locator('#thumbnails img').count()).toBe(1);
  expect(await page.locator('#media audio').getAttribute('src')).toMatch(/\/artifacts\/audio\.mp3$/);
  // The transcript with the time of each line, and every file the job made.
  await expect.poll(() => page.locator('#transcript ol.segments li').count(), { timeout: 15_000 }).toBeGreaterThan(0);
  expect(await page.locator('#transcript ol.segments li').first().textContent()).toMatch(
    /^0:00 Subtitles can serve as a transcript/,
  );
  const files = await page.locator('#artifacts a').allTextContents();
  expect(files).toEqual(expect.arrayContaining(['audio.mp3', 'transcript.srt', 'transcript.vtt', 'transcript.txt']));
  // The timeline: a bar per step that ran; the two branches after extractMetadata overlap in time.
  const bar = async (step: string) => (await page.locator(`#steps tr[data-step="${step}"] .bar`).boundingBox())!;
  const [poster, audio] = [await bar('posterFrame'), await bar('extractAudio')];
  const meta = await bar('extractMetadata');
  expect(poster.x).toBeGreaterThanOrEqual(meta.x + meta.width - 2);
  expect(Math.abs(poster.x - audio.x)).toBeLessThan(poster.width + audio.width);
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

test(
  'several files dropped at once each keep a line; the list shows thumbnails, durations, error codes and counts',
  { timeout: 180_000 },
  async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(base);
    await dropFiles(page, ['video/silent.mp4', 'image/320x240.jpg', 'bad/truncated.jpg']);
    const row = (name: string) => page.locator('tr.job', { hasText: name }).first();
    // A video with no audio: validate, metadata, the poster frame, the web rendition (its index is at the end) and
    // the storyboard ran; extracting audio, transcribing, summarizing and the waveform do not apply. That is all the
    // work there was, not five steps of nine.
    await row('silent.mp4').locator('.status.completed').waitFor({ timeout: 90_000 });
    await expect
      .poll(() => row('silent.mp4').locator('td.steps').textContent(), { timeout: 5_000 })
      .toBe('5/5 · 4 skipped');
    await expect.poll(() => row('silent.mp4').locator('td.took').textContent()).toMatch(/^\d+\.\d s$/);
    // The photo's row shows its smallest thumbnail, loaded from the job's artifacts.
    await row('320x240.jpg').locator('.status.completed').waitFor({ timeout: 90_000 });
    const img = row('320x240.jpg').locator('td.thumb img');
    await expect
      .poll(() =>
        img.evaluate((el) => {
          const loaded = el as unknown as { complete: boolean; naturalWidth: number };
          return loaded.complete && loaded.naturalWidth;
        }),
      )
      .toBe(160);
    // A failure says why in the list.
    await row('truncated.jpg').locator('.status.failed').waitFor({ timeout: 90_000 });
    expect(await row('truncated.jpg').locator('td.status').textContent()).toBe('failed · CORRUPT_FILE');
    // The counts above the list come from the whole store, not only the rows shown.
    const failed = async () =>
      ((await (await fetch(`${base}/summary`)).json()) as { byStatus: Record<string, number> }).byStatus.failed;
    await expect
      .poll(async () => [await page.locator('#counts [data-status="failed"]').textContent(), await failed()], {
        timeout: 5_000,
      })
      .toEqual([expect.stringMatching(/^\d+ failed$/), expect.any(Number)]);
    expect(await page.locator('#counts [data-status="failed"]').textContent()).toBe(`${await failed()} failed`);
    expect(await page.locator('#counts [data-status="completed"]').textContent()).toMatch(/^\d+ completed$/);
  },
);

test(
  'the dashboard, /docs and /admin/queues load their scripts and styles when opened by a host name over HTTP',
  {
    timeout: 120_000,
  },
  async () => {
    const origin = `http://${HOST}:${port}`;
    const page = await browser.newPage();
    const failed: string[] = [];
    // Same origin only: Bull Board's page asks for Google Fonts, which the CSP blocks by design (nothing leaves).
    page.on('requestfailed', (req) => {
      // Scripts and styles: the list's thumbnails may be cut short by the navigation to the next page.
      const kind = req.resourceType();
      if (req.url().startsWith(origin) && ['document', 'script', 'stylesheet'].includes(kind))
        failed.push(`${req.url()}: ${req.failure()?.errorText}`);
    });
    // The script ran: it asks this server for the job list.
    const listed = page.waitForResponse((res) => res.url().startsWith(`${origin}/jobs?`), { timeout: 15_000 });
    const csp = (await page.goto(origin))?.headers()['content-security-policy'];
    expect((await listed).status()).toBe(200);
    expect(csp).not.toContain('upgrade-insecure-requests');
    // The stylesheet applied.
    await expect.poll(() => page.evaluate<number>('document.styleSheets[0]?.cssRules.length ?? 0')).toBeGreaterThan(0);
    // Swagger UI draws the API's title with its own script.
    await page.goto(`${origin}/docs`);
    await page.locator('.swagger-ui .info .title').waitFor({ timeout: 15_000 });
    // Bull Board's page is a script that fills #root.
    await page.goto(`${origin}/admin/queues`);
    await expect
      .poll(() => page.evaluate<number>("document.querySelector('#root')?.childElementCount ?? 0"))
      .toBeGreaterThan(0);
    expect(failed, failed.join('\n')).toEqual([]);
  },
);

test(
  'the search box finds a video by words of its subtitles and shows where they matched',
  { timeout: 180_000 },
  async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(base);
    const ids = await dropFiles(page, ['video/with-subtitles.mkv', 'image/320x240.jpg']);
    for (const id of ids) await page.locator(`tr.job[data-id="${id}"] .status.completed`).waitFor({ timeout: 90_000 });

    await page.fill('#search', 'speech model configured');
    const video = page.locator(`tr.job[data-id="${ids[0]}"]`);
    await video.locator('p.snippet').waitFor({ timeout: 10_000 });
    // Only jobs that say every word are listed; the matched words are marked in the snippet.
    expect(await page.locator(`tr.job[data-id="${ids[1]}"]`).count()).toBe(0);
    const marked = (await video.locator('p.snippet mark').allTextContents()).map((t) => t.toLowerCase());
    expect(marked).toEqual(expect.arrayContaining(['speech', 'model', 'configured']));
    fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts', 'dashboard-search.png') });

    // Cleared, the list is the whole list again.
    await page.fill('#search', '');
    await page.locator(`tr.job[data-id="${ids[1]}"]`).waitFor({ timeout: 10_000 });
    expect(await page.locator('p.snippet').count()).toBe(0);
  },
);

test(
  'the job page shows what each kind of file produced: a photo, a recording, a PDF and a failure',
  { timeout: 300_000 },
  async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(base);
    const ids = await dropFiles(page, [
      'image/camera-gps-dscn0010.jpg',
      'audio/voice-memo.wav',
      'pdf/three-pages.pdf',
      'bad/truncated.jpg',
    ]);
    const shots = path.join(ROOT, 'test-artifacts');
    fs.mkdirSync(shots, { recursive: true });
    const open = async (id: string, status: string, shot: string) => {
      await page.goto(`${base}/#/jobs/${id}`);
      // This job's page, not the one before it still on screen: its graph is drawn for its id and final status.
      await page.locator(`#graph[data-job="${id}"][data-status="${status}"]`).waitFor({ timeout: 120_000 });
      expect(await page.textContent('#job-status')).toContain(`job ${id}`);
      await page.screenshot({ path: path.join(shots, `dashboard-${shot}.png`), fullPage: true });
    };

    // The photo: one picture, its labels and palette, where it was taken, its EXIF.
    await open(ids[0]!, 'completed', 'image');
    expect(await page.locator('#thumbnails img').count()).toBe(1);
    expect(await page.locator('#analysis .palette .swatch').count()).toBeGreaterThan(0);
    expect(await page.textContent('#analysis')).toMatch(/pHash [0-9a-f]+/);
    const where = page.locator('#details a[href^="https://www.openstreetmap.org/"]');
    expect(await where.textContent()).toMatch(/^-?\d+\.\d{6}, -?\d+\.\d{6}$/);
    expect(await page.locator('#details table.exif tr').count()).toBeGreaterThan(3);

    // The recording: its transcript line by line with times, and its files.
    await open(ids[1]!, 'completed', 'audio');
    const recording = (await (await fetch(`${base}/jobs/${ids[1]}`)).json()) as JobDocument;
    expect(recording.results.transcript?.provider, JSON.stringify(recording.steps)).toBe('pocketsphinx');
    await expect.poll(() => page.locator('#transcript ol.segments li').count(), { timeout: 15_000 }).toBeGreaterThan(0);
    expect(await page.locator('#transcript ol.segments .at').first().textContent()).toMatch(/^\d+:\d\d$/);
    expect(await page.locator('#artifacts a').allTextContents()).toEqual(
      expect.arrayContaining(['transcript.json', 'transcript.srt']),
    );

    // The PDF: its first page, page count, excerpt and a link to the whole text.
    await open(ids[2]!, 'completed', 'pdf');
    expect(await page.locator('#thumbnails img').getAttribute('alt')).toBe('first page');
    expect(await page.textContent('#media .facts')).toMatch(/3 pages/);
    expect(await page.locator('#texts a').getAttribute('href')).toMatch(/\/artifacts\/text\.txt$/);

    // The failure: its code, the step that failed in the graph, and no retry for a file that cannot change.
    await open(ids[3]!, 'failed', 'failed');
    expect(await page.textContent('#job-error')).toMatch(/^CORRUPT_FILE at validate: /);
    expect(await page.getAttribute('#graph [id*="flowchart-validate-"]', 'data-step-status')).toBe('failed');
    expect(await page.locator('#retry').isDisabled()).toBe(true);
  },
);

test('a job waiting for review shows why, and the Reject button ends it rejected with the note', async () => {
  const form = new FormData();
  form.append('instructions', JSON.stringify({ review: { when: 'always' } }));
  form.append('file', new Blob([fs.readFileSync(path.join(CORPUS, 'image/320x240.jpg'))]), 'review-me.jpg');
  const created = await fetch(`${base}/jobs`, { method: 'POST', body: form });
  expect(created.status).toBe(202);
  const { id } = (await created.json()) as JobDocument;

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(`${base}/#/jobs/${id}`);
  await page.locator('#job-status .status.awaiting_review').waitFor({ timeout: 90_000 });
  await page.locator('#review-form').waitFor({ state: 'visible', timeout: 10_000 });
  expect(await page.textContent('#review-reason')).toBe('Waits for a review: the job asked for review');
  // What there is to decide on: the picture, and the steps that did not apply greyed out.
  await page.locator('#thumbnails img').waitFor({ timeout: 10_000 });
  expect(await page.getAttribute('#graph [id*="flowchart-posterFrame-"]', 'data-step-status')).toBe('unused');
  // The review sits beside the picture it is about (to its right, side by side), and both above the workflow graph.
  const picture = (await page.locator('#thumbnails img').boundingBox())!;
  const panel = (await page.locator('#review').boundingBox())!;
  const graph = (await page.locator('#graph').boundingBox())!;
  expect(panel.x).toBeGreaterThanOrEqual(picture.x + picture.width);
  expect(panel.y).toBeLessThan(picture.y + picture.height);
  expect(picture.y).toBeLessThan(panel.y + panel.height);
  expect(graph.y).toBeGreaterThan(Math.max(picture.y + picture.height, panel.y + panel.height));
  fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, 'test-artifacts', 'dashboard-review.png'), fullPage: true });

  await page.fill('#review-note', 'not for the gallery');
  await page.click('#reject');
  await page.locator(`#graph[data-job="${id}"][data-status="rejected"]`).waitFor({ timeout: 60_000 });
  expect(await page.textContent('#review-decision')).toMatch(/^Rejected .*: not for the gallery$/);
  expect(await page.locator('#review-form').isHidden()).toBe(true);
  const doc = (await (await fetch(`${base}/jobs/${id}`)).json()) as JobDocument;
  expect(doc).toMatchObject({ status: 'rejected', review: { decision: 'reject', note: 'not for the gallery' } });
});

test(
  "the People page: covers, names (shown as text, never markup) edited in place, a person's faces, boxes on the picture",
  { timeout: 240_000 },
  async () => {
    const user = 'dash-people';
    const upload = async (name: string): Promise<string> => {
      const form = new FormData();
      form.append('userId', user);
      form.append('file', new Blob([fs.readFileSync(path.join(CORPUS, 'faces', name))]), name);
      const created = await fetch(`${base}/jobs`, { method: 'POST', body: form });
      expect(created.status).toBe(202);
      return ((await created.json()) as JobDocument).id;
    };
    const ids = [await upload('person-a-4.jpg'), await upload('person-a-8.jpg'), await upload('person-c.jpg')];
    for (const id of ids)
      await expect
        .poll(async () => ((await (await fetch(`${base}/jobs/${id}`)).json()) as JobDocument).status, {
          timeout: 120_000,
          interval: 500,
        })
        .toBe('completed');
    type Person = { id: number; name: string | null; faceCount: number; jobIds: string[] };
    const people = async () =>
      ((await (await fetch(`${base}/people?user=${user}`)).json()) as { people: Person[] }).people;
    const [a, c] = await people();
    expect(a).toMatchObject({ faceCount: 2 });
    expect(c).toMatchObject({ faceCount: 1, jobIds: [ids[2]] });
    // A name that is markup: every place shows it as text.
    const hostile = '<img src=x onerror="window.__xss=1">Ada';
    const named = await fetch(`${base}/people/${a!.id}?user=${user}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: hostile }),
    });
    expect(named.status).toBe(200);

    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const consoleErrors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    await page.goto(`${base}/#/people?user=${user}`);
    const card = (id: number) => page.locator(`#people li.person[data-id="${id}"]`);
    await card(c!.id).waitFor({ timeout: 15_000 });
    expect(await page.locator('#people li.person').count()).toBe(2);
    expect(await card(a!.id).locator('input.name').inputValue()).toBe(hostile);
    expect(await card(a!.id).locator('.count').textContent()).toBe('2 faces');
    expect(await card(c!.id).locator('.count').textContent()).toBe('1 face');
    // The cover is the person's best face's crop, loaded from its job's artifacts.
    const cover = card(a!.id).locator('img');
    expect(await cover.getAttribute('src')).toMatch(/^\/jobs\/[^/]+\/artifacts\/face-0\.jpg$/);
    await expect
      .poll(() => cover.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth))
      .toBeGreaterThan(0);

    // Named in place: the change is saved.
    await card(c!.id).locator('input.name').fill('Grace');
    await card(c!.id).locator('input.name').press('Enter');
    await expect.poll(async () => (await people()).find((p) => p.id === c!.id)?.name).toBe('Grace');

    // A person's page: its name as the title, its faces with links to their jobs.
    await card(a!.id).locator('a').click();
    await page.locator(`#person-title[data-person="${a!.id}"]`).waitFor({ timeout: 10_000 });
    expect(await page.textContent('#person-title')).toBe(hostile);
    expect(await page.inputValue('#person-name')).toBe(hostile);
    const faceLinks = page.locator('#person-faces li.face a');
    const links: (string | null)[] = [];
    for (let i = 0; i < (await faceLinks.count()); i++) links.push(await faceLinks.nth(i).getAttribute('href'));
    expect(links.sort()).toEqual([ids[0], ids[1]].map((id) => `#/jobs/${id}`).sort());

    // A job's page boxes its face on the picture, the box a link to its person, named in its title.
    await page.goto(`${base}/#/jobs/${ids[0]}`);
    const box = page.locator('#thumbnails .face-box');
    await box.waitFor({ timeout: 30_000 });
    expect(await box.count()).toBe(1);
    expect(await box.getAttribute('href')).toBe(`#/people/${a!.id}?user=${user}`);
    expect(await box.getAttribute('title')).toBe(hostile);
    const picture = (await page.locator('#thumbnails img').boundingBox())!;
    const face = (await box.boundingBox())!;
    expect(face.width).toBeGreaterThan(10);
    expect(face.x).toBeGreaterThanOrEqual(picture.x);
    expect(face.y).toBeGreaterThanOrEqual(picture.y);
    expect(face.x + face.width).toBeLessThanOrEqual(picture.x + picture.width + 1);
    expect(face.y + face.height).toBeLessThanOrEqual(picture.y + picture.height + 1);
    fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts', 'dashboard-faces.png'), fullPage: true });

    // Taken out of the person: the person keeps one face, the face is a person of its own.
    await box.click();
    await page.locator(`#person-title[data-person="${a!.id}"]`).waitFor({ timeout: 10_000 });
    await page.locator(`#person-faces li.face[data-job="${ids[0]}"] button`).click();
    await expect.poll(() => page.locator('#person-faces li.face').count()).toBe(1);
    expect(await page.textContent('#person-status')).toBe('1 face in 1 job(s)');
    expect((await people()).length).toBe(3);

    // Deleted: back to the list, without it.
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#person-delete');
    await page.locator('#people-view').waitFor({ state: 'visible', timeout: 10_000 });
    await expect.poll(() => page.locator('#people li.person').count()).toBe(2);
    expect(await page.locator(`#people li.person[data-id="${a!.id}"]`).count()).toBe(0);
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts', 'dashboard-people.png'), fullPage: true });

    // The markup was never markup: no image of it, nothing it ran.
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(consoleErrors, consoleErrors.join('\n')).toEqual([]);
  },
);
