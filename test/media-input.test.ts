/**
 * ffmpeg and ffprobe open a producer's file as what validate found it to be, with only the `file` protocol: a
 * playlist (or concat list) cannot make them read other files. And such lists are not media: UNSUPPORTED_TYPE.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mediaInput } from '../src/lib/media-types.js';
import { probeMedia } from '../src/lib/probe.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { runCli, tempDir } from './helpers.js';

const tools = resolveToolPaths();
let dir: string;
let playlist: string;

beforeAll(() => {
  dir = tempDir('media-input');
  // A video outside anything a producer may name, and a playlist that points at it.
  const secret = path.join(dir, 'secret.mp4');
  execFileSync(tools.ffmpeg, [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5:duration=3'],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', secret],
  ]);
  playlist = path.join(dir, 'list.m3u8');
  fs.writeFileSync(playlist, `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3.0,\n${secret}\n#EXT-X-ENDLIST\n`);
  fs.writeFileSync(path.join(dir, 'list.ffconcat'), `ffconcat version 1.0\nfile '${secret}'\n`);
}, 60_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a file opened as its validated format cannot pull in the files a playlist names', async () => {
  // Left to guess, ffprobe follows the playlist and reads the other file: what the pin prevents.
  const guessed = execFileSync(tools.ffprobe, [
    '-v',
    'error',
    '-show_entries',
    'stream=codec_type',
    '-of',
    'csv',
    playlist,
  ])
    .toString()
    .trim();
  expect(guessed).toContain('video');
  // Opened as the MP4 it would have been validated as, with only the file protocol: nothing is read from elsewhere.
  await expect(probeMedia(tools.ffprobe, playlist, { timeoutMs: 30_000, ext: 'mp4' })).rejects.toMatchObject({
    code: 'CORRUPT_FILE',
  });
  expect(mediaInput(playlist, 'mp4', 'ffmpeg')).toEqual(['-protocol_whitelist', 'file', '-f', 'mov', '-i', playlist]);
  expect(mediaInput(playlist, 'mkv', 'ffprobe')).toEqual([
    '-protocol_whitelist',
    'file',
    '-f',
    'matroska',
    '--',
    playlist,
  ]);
});

test('playlists and concat lists are not media: UNSUPPORTED_TYPE', { timeout: 300_000 }, async () => {
  for (const name of ['list.m3u8', 'list.ffconcat']) {
    const res = await runCli(['process', path.join(dir, name), '--json'], { DATA_DIR: path.join(dir, 'data') });
    const doc = JSON.parse(res.stdout) as JobDocument;
    expect(doc.error?.code, name).toBe('UNSUPPORTED_TYPE');
  }
});

test(
  'a Matroska header whose elements are damaged is CORRUPT_FILE, not UNSUPPORTED_TYPE',
  { timeout: 120_000 },
  async () => {
    // EBML, a root that claims one child (the version), then DocType "matroska", then no valid element at all: the
    // bytes say what the file is meant to be, so the file is a damaged one of that kind.
    const docType = Buffer.concat([Buffer.from([0x42, 0x82, 0x88]), Buffer.from('matroska')]);
    const file = path.join(dir, 'damaged.mkv');
    fs.writeFileSync(
      file,
      Buffer.concat([
        Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x81, 0x42, 0x86, 0x81, 0x01]),
        docType,
        Buffer.from('garbage '.repeat(512)),
      ]),
    );
    const res = await runCli(['process', file, '--json'], { DATA_DIR: path.join(dir, 'data') });
    const doc = JSON.parse(res.stdout) as JobDocument;
    expect(doc.error).toMatchObject({ code: 'CORRUPT_FILE', step: 'validate' });
    expect(doc.fileType).toBe('video');
  },
);
