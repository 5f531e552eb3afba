import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../src/config.js';
import { ROOT } from './helpers.js';

describe('config', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.dbPath).toBe(path.resolve('data', 'orchestrator.db'));
    expect(c.thumbnails).toEqual({ widths: [160, 320, 640], format: 'webp', quality: 80 });
    expect(c.disabledSteps).toEqual([]);
    expect(c.maxFileBytes).toBe(2 * 1024 ** 3);
  });

  test('values are parsed', () => {
    const c = loadConfig({
      DATA_DIR: '/tmp/x',
      THUMBNAIL_WIDTHS: '640, 100,100',
      DISABLED_STEPS: 'analyzeImage,summarize',
      MAX_UPLOAD_BYTES: '1000',
    });
    expect(c.thumbnails.widths).toEqual([100, 640]);
    expect(c.disabledSteps).toEqual(['analyzeImage', 'summarize']);
    expect(c.maxFileBytes).toBe(1000);
  });

  test('every bad variable is named at once', () => {
    let err: unknown;
    try {
      loadConfig({
        MAX_UPLOAD_BYTES: 'lots',
        DISABLED_STEPS: 'validate',
        THUMBNAIL_FORMAT: 'bmp',
        THUMBNAIL_WIDTHS: '2',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as ConfigError).message;
    for (const name of ['MAX_UPLOAD_BYTES', 'DISABLED_STEPS', 'THUMBNAIL_FORMAT', 'THUMBNAIL_WIDTHS']) {
      expect(message).toContain(name);
    }
  });

  test('empty values mean the default', () => {
    const c = loadConfig({ DATA_DIR: '', FFMPEG_PATH: ' ', THUMBNAIL_WIDTHS: '' });
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.ffmpegPath).toBeUndefined();
    expect(c.thumbnails.widths).toEqual([160, 320, 640]);
  });

  test('queue and step pairs', () => {
    const c = loadConfig({ WORKER_CONCURRENCY: 'image=3, ai=1', STEP_TIMEOUTS: 'extractAudio=5000' });
    expect(c.workerConcurrency.image).toBe(3);
    expect(c.workerConcurrency.ai).toBe(1);
    expect(c.workerConcurrency.light).toBeGreaterThanOrEqual(1);
    expect(c.stepTimeouts).toEqual({ extractAudio: 5000 });
    expect(() => loadConfig({ WORKER_CONCURRENCY: 'gpu=2' })).toThrow(/WORKER_CONCURRENCY.*"gpu=2"/);
    expect(() => loadConfig({ STEP_TIMEOUTS: 'extractAudio=soon' })).toThrow(/STEP_TIMEOUTS/);
    expect(() => loadConfig({ REDIS_URL: 'localhost:6379' })).toThrow(/REDIS_URL/);
  });

  test('the job store: SQLite in DATA_DIR unless DATABASE_URL names a PostgreSQL server', () => {
    expect(loadConfig({}).database).toBeNull();
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db:5432/media', DATABASE_SCHEMA: 'mo_prod' }).database).toEqual({
      url: 'postgres://u@db:5432/media',
      schema: 'mo_prod',
    });
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/media' }).database).toEqual({
      url: 'postgresql://db/media',
      schema: undefined,
    });
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/media' })).toThrow(/DATABASE_URL/);
    // The schema goes into SQL as a name: nothing but lower-case letters, digits and _.
    expect(() => loadConfig({ DATABASE_URL: 'postgres://db/m', DATABASE_SCHEMA: 'x; DROP TABLE jobs' })).toThrow(
      /DATABASE_SCHEMA/,
    );
  });

  test('slow clients: request timeouts, with a ceiling on the whole request that a slow large upload fits under', () => {
    expect(loadConfig({}).http).toEqual({
      headersTimeoutMs: 30_000,
      bodyTimeoutMs: 60_000,
      bodyMinBytesPerSec: 1000,
      // 2 GiB at 64 KiB/s.
      requestTimeoutMs: 32_768_000,
    });
    expect(loadConfig({ MAX_UPLOAD_BYTES: '1000' }).http.requestTimeoutMs).toBe(3_600_000);
    expect(loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '90000' }).http.requestTimeoutMs).toBe(90_000);
    expect(() => loadConfig({ HTTP_BODY_MIN_BYTES_PER_SEC: '0' })).toThrow(/HTTP_BODY_MIN_BYTES_PER_SEC/);
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(
      /HTTP_HEADERS_TIMEOUT_MS.*HTTP_REQUEST_TIMEOUT_MS/,
    );
  });

  test('webhook receiver hosts: concurrency and circuit', () => {
    expect(loadConfig({})).toMatchObject({
      webhookHostConcurrency: 2,
      webhookBreakerFailures: 5,
      webhookBreakerCooldownMs: 30_000,
    });
    expect(() => loadConfig({ WEBHOOK_HOST_CONCURRENCY: '0' })).toThrow(/WEBHOOK_HOST_CONCURRENCY/);
  });

  test('unknown steps are rejected', () => {
    expect(() => loadConfig({ DISABLED_STEPS: 'makeCoffee' })).toThrow(/makeCoffee/);
  });

  test('AI providers: offline by default, the OpenAI-compatible server for all three once it is named', () => {
    const offline = loadConfig({});
    expect(offline.ai.providers).toEqual({ vision: 'local', speech: 'local', text: 'local' });
    expect(offline.workerConcurrency.ai).toBe(offline.workerConcurrency.image);

    const remote = loadConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1', AI_MAX_CONCURRENCY: '12' });
    expect(remote.ai.providers).toEqual({ vision: 'openai', speech: 'openai', text: 'openai' });
    expect(remote.ai.openai).toMatchObject({ baseURL: 'http://127.0.0.1:11434/v1', chatModel: 'gpt-4o-mini' });
    // Work that waits on HTTP is not sized by cores.
    expect(remote.workerConcurrency.ai).toBe(12);

    const mixed = loadConfig({
      OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1',
      AI_PROVIDERS: 'vision=openai, text=openai, speech=local',
      VISION_MODEL: 'llava',
    });
    expect(mixed.ai.providers).toEqual({ vision: 'openai', speech: 'local', text: 'openai' });
    expect(mixed.ai.openai.visionModel).toBe('llava');
  });

  test('bad AI settings stop start-up naming the variable', () => {
    expect(() => loadConfig({ OPENAI_BASE_URL: 'file:///etc/passwd' })).toThrow(/OPENAI_BASE_URL/);
    expect(() => loadConfig({ AI_PROVIDERS: 'vision=gpt' })).toThrow(/AI_PROVIDERS.*"vision=gpt"/);
    expect(() => loadConfig({ AI_PROVIDERS: 'smell=local' })).toThrow(/AI_PROVIDERS/);
    expect(() => loadConfig({ AI_PROVIDERS: 'text=openai' })).toThrow(/AI_PROVIDERS.*neither OPENAI_API_KEY/);
    expect(() => loadConfig({ VISION_MIN_SCORE: '2' })).toThrow(/VISION_MIN_SCORE/);
    expect(() => loadConfig({ AI_TIMEOUT_MS: '-1' })).toThrow(/AI_TIMEOUT_MS/);
    expect(() => loadConfig({ TRANSCRIBE_PREFER_SUBTITLES: 'maybe' })).toThrow(/TRANSCRIBE_PREFER_SUBTITLES/);
  });

  test('every variable is in .env.example and the README', () => {
    const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(CONFIG_VARIABLES.length).toBeGreaterThan(30);
    for (const name of CONFIG_VARIABLES) {
      expect(example, name).toMatch(new RegExp(`^${name}=`, 'm'));
      expect(readme, name).toContain(`\`${name}\``);
    }
  });
});
