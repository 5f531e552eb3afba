/**
 * EXIF dates are the camera's local time: shown with the offset the camera wrote (OffsetTimeOriginal), or as a local
 * time with `timeZone: null` when it wrote none, never as UTC. GPS date and time are UTC. Photos are made in the test
 * with the tags written by sharp, and read through the extractMetadata step.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { exifDate, exifOffset, gpsTimestamp } from '../src/lib/exif-dates.js';
import { createLogger } from '../src/lib/log.js';
import type { Metadata } from '../src/lib/types.js';
import { createDeps, type JobSink } from '../src/nodes/deps.js';
import { extractMetadata } from '../src/nodes/extract-metadata.js';
import { CORPUS, sha256Of, tempDir } from './helpers.js';

const dir = tempDir('exif-dates');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A sink that refuses everything: extractMetadata writes nothing to the store. */
const noSink: JobSink = {
  saveFinished: () => Promise.reject(new Error('not expected')),
  stepStarted: () => Promise.reject(new Error('not expected')),
  stepEnded: () => Promise.reject(new Error('not expected')),
  aiUsed: () => Promise.reject(new Error('not expected')),
};

async function metadataOf(file: string): Promise<Metadata> {
  const config = loadConfig({ DATA_DIR: dir, LOG_LEVEL: 'silent' });
  const deps = createDeps(config, noSink, createLogger('silent'));
  const size = fs.statSync(file).size;
  const outcome = await extractMetadata(
    {
      jobId: 'exif',
      file: { path: file },
      user: null,
      fileType: 'image',
      fileInfo: { name: path.basename(file), size, mime: 'image/jpeg', ext: 'jpg', sha256: sha256Of(file) },
      results: {},
    },
    deps,
    { signal: new AbortController().signal, attempt: 1, log: createLogger('silent') },
  );
  if (outcome.status !== 'succeeded' || !outcome.results?.metadata) throw new Error(JSON.stringify(outcome));
  return outcome.results.metadata;
}

/** A small JPEG with these Exif-IFD tags (DateTimeOriginal and its friends live there). */
async function photoWith(name: string, exif: Record<string, string>): Promise<string> {
  const file = path.join(dir, name);
  await sharp({ create: { width: 32, height: 24, channels: 3, background: '#468' } })
    .jpeg()
    .withExif({ IFD0: { Make: 'TestCam' }, IFD2: exif })
    .toFile(file);
  return file;
}

test('a photo with OffsetTimeOriginal: its time with that offset, and the offset as its time zone', async () => {
  const file = await photoWith('berlin.jpg', {
    DateTimeOriginal: '2019:06:01 12:34:56',
    OffsetTimeOriginal: '+02:00',
    SubSecTimeOriginal: '25',
  });
  const { exif } = await metadataOf(file);
  expect(exif?.DateTimeOriginal).toBe('2019-06-01T12:34:56.25+02:00');
  expect(exif?.timeZone).toBe('+02:00');
  // The same instant as UTC: 10:34:56.25Z.
  expect(new Date(String(exif?.DateTimeOriginal)).toISOString()).toBe('2019-06-01T10:34:56.250Z');
});

test('a photo without an offset: a local time with no Z, and timeZone null', async () => {
  const file = await photoWith('unknown-zone.jpg', { DateTimeOriginal: '2019:06:01 12:34:56' });
  const { exif } = await metadataOf(file);
  expect(exif?.DateTimeOriginal).toBe('2019-06-01T12:34:56');
  expect(exif).toHaveProperty('timeZone', null);
});

test("a real camera's photo: local times as written, the GPS fix's time in UTC", async () => {
  const meta = await metadataOf(path.join(CORPUS, 'image/camera-gps-dscn0010.jpg'));
  expect(meta.exif?.DateTimeOriginal).toBe('2008-10-22T16:28:39');
  expect(meta.exif?.CreateDate).toBe('2008-10-22T16:28:39');
  expect(meta.exif?.timeZone).toBeNull();
  expect(meta.gps?.timestamp).toBe('2008-10-23T14:27:07.240Z');
});

test('what is not a date is left out, not invented', () => {
  expect(exifDate('0000:00:00 00:00:00', null)).toBeNull();
  expect(exifDate('2019:02:30 10:00:00', null)).toBeNull();
  expect(exifDate('2019:06:01 25:00:00', null)).toBeNull();
  expect(exifDate('yesterday', '+01:00')).toBeNull();
  expect(exifDate(1559392496, null)).toBeNull();
  expect(exifOffset('+2:00')).toBeNull();
  expect(exifOffset('-05:30')).toBe('-05:30');
  expect(exifOffset('+15:00')).toBeNull();
  expect(gpsTimestamp('2008:10:23', [25, 0, 0])).toBeNull();
  expect(gpsTimestamp('2008:10:23', '14:27:07')).toBeNull();
});
