/**
 * OCR of pictures, offline: a phone photo of a notice (tinted paper, turned, grainy) gives its words, photos without
 * text give none, and the layout check that spares them a full recognition tells the two apart. With a vision
 * provider its text stands unless the job asks for OCR. tesseract.js reads its language data and core from
 * node_modules: with every network call refused it still reads, and it writes nothing where it runs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { OcrReaders } from '../src/lib/ocr.js';
import type { JobDocument } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { CORPUS, ROOT, tempDir } from './helpers.js';
import { noticePhoto, wordRecall } from './scan-fixtures.js';
import { startOpenAiServer, type FakeOpenAiServer } from './support/openai-server.js';

const NOTICE = ['NOTICE', 'The swimming pool closes early', 'on Friday for maintenance.', 'Lessons resume on Monday.'];
const PHOTOS = ['image/landscape-exif-orientation-5.jpg', 'image/flowers.jpeg', 'image/camera-gps-dscn0010.jpg'];

const dataDir = tempDir('ocr-images');
const notice = path.join(dataDir, 'notice.jpg');
const readers = new OcrReaders();

beforeAll(async () => {
  fs.writeFileSync(notice, await noticePhoto(NOTICE));
});
afterAll(async () => {
  await readers.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const grey = (file: string): Promise<Buffer> =>
  sharp(file).rotate().resize(1024, 1024, { fit: 'inside' }).greyscale().png().toBuffer();

test('the layout check finds lines of text in the notice and none in photos', async () => {
  const reader = readers.get(['eng']);
  expect(await reader.hasText(await grey(notice))).toBe(true);
  for (const photo of PHOTOS) expect(await reader.hasText(await grey(path.join(CORPUS, photo))), photo).toBe(false);
}, 60_000);

test('a worker thread that dies mid-recognition fails it at once, retryable; the next one starts a new worker', async () => {
  const reader = readers.get(['eng']);
  const page = await grey(notice);
  expect(await reader.hasText(page)).toBe(true);
  const thread = (await reader.thread())!;
  const reading = reader.recognize(page, { minConfidence: 70 });
  // As a crash or the memory limit would stop it, not through the reader.
  setTimeout(() => void thread.terminate(), 50);
  // Without the thread's exit in view, tesseract.js would wait for its answer until the test's time limit.
  await expect(reading).rejects.toMatchObject({ code: 'INTERNAL', retryable: true, message: /OCR worker stopped/ });
  const again = await reader.recognize(page, { minConfidence: 70 });
  expect(wordRecall(NOTICE.join(' '), again.text)).toBeGreaterThanOrEqual(0.8);
  expect(await reader.thread()).not.toBe(thread);
}, 60_000);

describe('analyzeImage', () => {
  let runtime: Runtime;
  const run = (jobId: string, file: string, instructions?: Record<string, unknown>): Promise<JobDocument> =>
    runtime.runner.run({ jobId, file: { path: file }, ...(instructions && { instructions }) });

  afterAll(async () => runtime?.close());

  test('offline: the notice gives its words; photos without text give none', async () => {
    runtime = await createRuntime(loadConfig({ DATA_DIR: path.join(dataDir, 'offline') }), createLogger('silent'));
    const doc = await run('notice', notice);
    const analysis = doc.results.analysis!;
    expect(analysis.textSource).toBe('ocr');
    expect(analysis.textConfidence).toBeGreaterThanOrEqual(70);
    expect(wordRecall(NOTICE.join(' '), analysis.text!)).toBeGreaterThanOrEqual(0.8);
    // Search finds the picture by a word OCR read (the noise is random: which of the notice's words survive varies
    // from run to run; the recall above bounds how many may not).
    const word = ['maintenance', 'swimming', 'lessons', 'friday', 'monday'].find((w) =>
      analysis.text!.toLowerCase().includes(w),
    );
    expect(word).toBeDefined();
    const found = await runtime.store.search(word!, {}, 10);
    expect(found.jobs.map((j) => j.id)).toEqual(['notice']);

    for (const [i, photo] of PHOTOS.entries()) {
      const plain = await run(`photo-${i}`, path.join(CORPUS, photo));
      expect(plain.steps.analyzeImage?.status, photo).toBe('succeeded');
      expect(plain.results.analysis!.text ?? null, photo).toBeNull();
      expect(plain.results.analysis!.textSource, photo).toBeUndefined();
    }
    const off = await run('notice-off', notice, { ocr: false });
    expect(off.results.analysis!.text ?? null).toBeNull();
    await runtime.close();
  }, 120_000);
});

describe('with a vision provider', () => {
  let server: FakeOpenAiServer;
  let runtime: Runtime;
  beforeAll(async () => {
    server = await startOpenAiServer();
    const config = loadConfig({
      DATA_DIR: path.join(dataDir, 'provider'),
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: server.url,
      VISION_MODEL: 'vision-ocr-test',
      AI_PROVIDERS: 'vision=openai,speech=off,text=local',
    });
    runtime = await createRuntime(config, createLogger('silent'));
  });
  afterAll(async () => {
    await runtime?.close();
    await server?.close();
  });

  test('its text stands; OCR reads only when the job asks', async () => {
    server.script('vision-ocr-test', { kind: 'answer', patch: { text: 'POOL NOTICE' }, times: 2 });
    const plain = await runtime.runner.run({ jobId: 'p-plain', file: { path: notice } });
    expect(plain.results.analysis).toMatchObject({ text: 'POOL NOTICE', textSource: 'vision' });
    expect(plain.results.analysis!.textConfidence).toBeUndefined();

    const asked = await runtime.runner.run({ jobId: 'p-ocr', file: { path: notice }, instructions: { ocr: true } });
    expect(asked.results.analysis!.textSource).toBe('ocr');
    expect(asked.results.analysis!.text).toMatch(/Friday/);
    expect(asked.results.analysis!.caption).toMatch(/picture/);
  }, 120_000);
});

test('offline for real: no network call, no file written, from any thread', async () => {
  const work = tempDir('ocr-offline');
  try {
    const png = path.join(work, 'notice.png');
    await sharp(notice).greyscale().png().toFile(png);
    const log = path.join(work, 'net.log');
    const cwd = path.join(work, 'cwd');
    fs.mkdirSync(cwd);
    // Loaded in the process and in every worker thread (tesseract.js reads in one): each refuses the network.
    const guard = path.join(work, 'guard.mjs');
    fs.writeFileSync(
      guard,
      `import fs from 'node:fs'; import net from 'node:net'; import dns from 'node:dns';
       import { threadId } from 'node:worker_threads';
       const log = ${JSON.stringify(log)};
       fs.appendFileSync(log, 'guard in thread ' + threadId + '\\n');
       const deny = (what) => { fs.appendFileSync(log, 'NETWORK ' + what + '\\n'); throw new Error('no network: ' + what); };
       net.Socket.prototype.connect = function () { deny('connect'); };
       dns.lookup = () => deny('dns.lookup');
       globalThis.fetch = () => deny('fetch');`,
    );
    const script = `
      import fs from 'node:fs';
      const { OcrReaders } = await import(${JSON.stringify(path.join(ROOT, 'dist/lib/ocr.js'))});
      const readers = new OcrReaders();
      const read = await readers.get(['eng']).recognize(fs.readFileSync(${JSON.stringify(png)}), { minConfidence: 70 });
      await readers.close();
      console.log(JSON.stringify(read));`;
    const main = path.join(work, 'read.mjs');
    fs.writeFileSync(main, script);
    const out = execFileSync(process.execPath, ['--import', guard, main], {
      cwd,
      encoding: 'utf8',
    });
    const read = JSON.parse(out.trim().split('\n').at(-1)!) as { text: string };
    expect(read.text).toMatch(/Friday/);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('NETWORK'))).toEqual([]);
    // The guard ran in the tesseract worker thread too, not only in the main one.
    expect(lines.some((l) => /^guard in thread [1-9]/.test(l))).toBe(true);
    expect(fs.readdirSync(cwd)).toEqual([]);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}, 60_000);
