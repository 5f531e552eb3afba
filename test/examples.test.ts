/** The example plugins (examples/), run as a service runs them: loaded from PLUGINS, their steps in step threads. */
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { PluginStepName } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { CORPUS, ROOT, TestState } from './helpers.js';

let state: TestState;
let runtime: Runtime;

beforeAll(async () => {
  state = await TestState.create('examples');
  const plugins = ['watermark', 'keywords'].map((name) => path.join(ROOT, 'examples', name, 'index.mjs')).join(',');
  runtime = await createRuntime(
    loadConfig({ ...state.env, PLUGINS: plugins, AI_PROVIDERS: 'vision=off' }),
    createLogger('silent'),
  );
}, 60_000);

afterAll(async () => {
  await runtime?.close();
  await state?.drop();
});

test('watermark: a JPEG of the upright picture with the job’s text, as an artifact', async () => {
  const doc = await runtime.runner.run({
    jobId: 'example-watermark',
    file: { path: path.join(CORPUS, 'image/320x240.jpg') },
    instructions: { steps: { watermark: { text: 'ACME <draft>' } } },
  });
  expect(doc.status).toBe('completed');
  expect(doc.steps['watermark' as PluginStepName]?.status).toBe('succeeded');
  expect(doc.results.watermark).toEqual({
    url: `/jobs/${doc.id}/artifacts/watermarked.jpg`,
    bytes: expect.any(Number) as number,
    width: 320,
    height: 240,
    text: 'ACME <draft>',
  });
  const file = await runtime.deps.artifacts.localPath(doc.id, 'watermarked.jpg');
  const meta = await sharp(file).metadata();
  expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);
}, 120_000);

test('keywords: the most frequent words of the document’s text, as many as asked', async () => {
  const doc = await runtime.runner.run({
    jobId: 'example-keywords',
    file: { path: path.join(CORPUS, 'pdf/three-pages.pdf') },
    instructions: { steps: { keywords: { count: 1 } } },
  });
  expect(doc.status).toBe('completed');
  const result = doc.results.keywords as { words: number; keywords: { word: string; count: number }[] };
  expect(result.words).toBeGreaterThan(0);
  expect(result.keywords).toHaveLength(1);
  const text = (await runtime.deps.artifacts.readText(doc.id, 'text.txt')) ?? '';
  const [top] = result.keywords;
  expect(text.toLowerCase().split(top!.word).length - 1).toBeGreaterThanOrEqual(top!.count);
  // An image job has no keywords step, a document job no watermark.
  expect(doc.steps['watermark' as PluginStepName]).toBeUndefined();
}, 120_000);
