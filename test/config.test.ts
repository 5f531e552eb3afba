import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

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

  test('unknown steps are rejected', () => {
    expect(() => loadConfig({ DISABLED_STEPS: 'makeCoffee' })).toThrow(/makeCoffee/);
  });
});
