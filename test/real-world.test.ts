/**
 * Files beyond the corpus, made here with ffmpeg and sharp or by hand: phone-sized photos, rotated video, audio in
 * video containers, truncated and disguised files, hand-written PDFs. Each must end in a clear outcome, never INTERNAL.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { CORPUS, outcomeOf, runCli, tempDir } from './helpers.js';

const { ffmpeg } = resolveToolPaths();
let dir: string;
let dataDir: string;
const f = (name: string): string => path.join(dir, name);
const corpus = (p: string): string => path.join(CORPUS, p);
const ff = (...args: string[]): void => {
  execFileSync(ffmpeg, ['-v', 'error', '-y', ...args]);
};
const head = (src: string, fraction: number): Buffer => {
  const data = fs.readFileSync(src);
  return data.subarray(0, Math.floor(data.length * fraction));
};

/** A minimal PDF written by hand, with a correct cross-reference table: "another producer". */
function handWrittenPdf(text: string): Buffer {
  const stream = `BT /F1 24 Tf 72 720 Td (${text}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

interface Case {
  name: string;
  make: () => Promise<void> | void;
  expect: string[];
  check?: (doc: JobDocument) => void;
  args?: string[];
}

const cases: Case[] = [
  {
    name: 'phone-portrait.jpg',
    make: async () => {
      const noise = Buffer.alloc(400 * 300 * 3);
      for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
      await sharp(noise, { raw: { width: 400, height: 300, channels: 3 } })
        .resize(4000, 3000)
        .jpeg({ quality: 85 })
        .withMetadata({ orientation: 6, exif: { IFD0: { Make: 'Phone', Model: 'Phone 15' } } })
        .toFile(f('phone-portrait.jpg'));
    },
    expect: ['image'],
    check: (doc) => {
      expect([doc.results.metadata?.width, doc.results.metadata?.height]).toEqual([3000, 4000]);
      expect(doc.results.metadata?.exif?.Model).toBe('Phone 15');
      for (const t of doc.results.thumbnails ?? []) expect(t.height).toBeGreaterThan(t.width);
      expect(doc.results.thumbnails?.map((t) => t.width)).toEqual([160, 320, 640]);
    },
  },
  {
    name: 'panorama.png',
    make: () =>
      sharp({ create: { width: 6000, height: 500, channels: 3, background: '#336699' } })
        .png()
        .toFile(f('panorama.png'))
        .then(() => undefined),
    expect: ['image'],
    check: (doc) => expect(doc.results.thumbnails?.at(-1)).toMatchObject({ width: 640, height: 53 }),
  },
  {
    name: 'one-pixel.png',
    make: () =>
      sharp({ create: { width: 1, height: 1, channels: 4, background: '#ff000080' } })
        .png()
        .toFile(f('one-pixel.png'))
        .then(() => undefined),
    expect: ['image'],
    check: (doc) => expect(doc.results.thumbnails?.map((t) => [t.width, t.height])).toEqual([[1, 1]]),
  },
  {
    name: 'grey-16bit.tif',
    make: () =>
      sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } })
        .toColourspace('grey16')
        .tiff()
        .toFile(f('grey-16bit.tif'))
        .then(() => undefined),
    expect: ['image'],
  },
  {
    name: 'png-named.pdf',
    make: () => fs.copyFileSync(corpus('image/with-alpha.png'), f('png-named.pdf')),
    expect: ['image'],
  },
  {
    name: 'gif-named.mp4',
    make: () => fs.copyFileSync(corpus('image/animated-loop-3.gif'), f('gif-named.mp4')),
    expect: ['image'],
  },
  {
    name: 'rotated-phone-video.mp4',
    make: () => {
      // Phones store portrait video as landscape frames plus a rotation in the display matrix.
      ff(
        ...[
          '-f',
          'lavfi',
          '-i',
          'testsrc=size=320x180:rate=10:duration=2',
          '-f',
          'lavfi',
          '-i',
          'sine=frequency=440:duration=2',
        ],
        ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', f('landscape.mp4')],
      );
      ff('-i', f('landscape.mp4'), '-c', 'copy', '-metadata:s:v:0', 'rotate=90', f('rotated-phone-video.mp4'));
    },
    expect: ['video'],
    check: (doc) => {
      expect(doc.results.metadata?.height).toBeGreaterThan(doc.results.metadata?.width ?? 0);
      expect(doc.results.thumbnails?.[0]?.height).toBeGreaterThan(doc.results.thumbnails?.[0]?.width ?? 0);
      expect(doc.steps.extractAudio?.status).toBe('succeeded');
    },
  },
  {
    name: 'voice-in-mp4.m4a',
    make: () => ff('-i', corpus('audio/voice-memo.wav'), '-c:a', 'aac', '-b:a', '64k', f('voice-in-mp4.m4a')),
    expect: ['audio'],
  },
  {
    name: 'audio-only.mp4',
    make: () => ff('-i', corpus('audio/voice-memo.wav'), '-c:a', 'aac', '-f', 'mp4', f('audio-only.mp4')),
    expect: ['audio'],
    check: (doc) => expect(doc.file.mime).toBe('audio/mp4'),
  },
  {
    name: 'song-with-cover.mp3',
    make: () =>
      ff(
        '-i',
        corpus('audio/tone.wav'),
        '-i',
        corpus('image/320x240.jpg'),
        '-map',
        '0:a',
        '-map',
        '1:v',
        '-c:a',
        'libmp3lame',
        '-c:v',
        'copy',
        '-disposition:v',
        'attached_pic',
        '-id3v2_version',
        '3',
        f('song-with-cover.mp3'),
      ),
    expect: ['audio'],
  },
  {
    name: 'speech.ogg',
    make: () => ff('-i', corpus('audio/voice-memo.wav'), '-c:a', 'libvorbis', f('speech.ogg')),
    expect: ['audio'],
  },
  {
    name: 'speech.flac',
    make: () => ff('-i', corpus('audio/voice-memo.wav'), '-c:a', 'flac', f('speech.flac')),
    expect: ['audio'],
  },
  {
    name: 'clip.mpg',
    make: () => ff('-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=1', '-c:v', 'mpeg2video', f('clip.mpg')),
    expect: ['video'],
  },
  {
    name: 'clip.flv',
    make: () => ff('-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=1', '-c:v', 'flv', f('clip.flv')),
    expect: ['video'],
  },
  {
    name: 'moov-at-end-truncated.mp4',
    make: () => {
      ff(
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=320x240:rate=25:duration=3',
        '-c:v',
        'libx264',
        '-pix_fmt',
        'yuv420p',
        f('whole.mp4'),
      );
      fs.writeFileSync(f('moov-at-end-truncated.mp4'), head(f('whole.mp4'), 0.6));
    },
    expect: ['reject:CORRUPT_FILE'],
  },
  {
    name: 'truncated.webm',
    make: () => fs.writeFileSync(f('truncated.webm'), head(corpus('video/clip.webm'), 0.1)),
    expect: ['video', 'reject:CORRUPT_FILE'],
  },
  {
    name: 'truncated.mp3',
    make: () => fs.writeFileSync(f('truncated.mp3'), head(corpus('audio/tone.mp3'), 0.3)),
    expect: ['audio', 'reject:CORRUPT_FILE'],
  },
  {
    name: 'truncated-half.pdf',
    make: () => fs.writeFileSync(f('truncated-half.pdf'), head(corpus('pdf/tracemonkey-paper.pdf'), 0.5)),
    expect: ['pdf', 'reject:CORRUPT_FILE'],
  },
  {
    name: 'pdf-header-only.pdf',
    make: () => fs.writeFileSync(f('pdf-header-only.pdf'), '%PDF-1.7\n%\xE2\xE3\xCF\xD3\n'),
    expect: ['reject:CORRUPT_FILE'],
  },
  {
    name: 'hand-written.pdf',
    make: () => fs.writeFileSync(f('hand-written.pdf'), handWrittenPdf('Hello from a hand written PDF')),
    expect: ['pdf'],
    check: (doc) => {
      expect(doc.results.metadata?.pages).toBe(1);
      expect(doc.results.text?.excerpt).toContain('Hello from a hand written PDF');
    },
  },
  {
    name: 'jpeg-magic-then-junk.jpg',
    make: () =>
      fs.writeFileSync(
        f('jpeg-magic-then-junk.jpg'),
        Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(4096, 0x41)]),
      ),
    expect: ['reject:CORRUPT_FILE', 'reject:UNSUPPORTED_TYPE'],
  },
  {
    name: 'half-a-photo.jpg',
    make: () => fs.writeFileSync(f('half-a-photo.jpg'), head(corpus('image/flowers.jpeg'), 0.5)),
    expect: ['reject:CORRUPT_FILE'],
  },
  {
    name: 'random.bin',
    make: () =>
      fs.writeFileSync(f('random.bin'), Buffer.from(Array.from({ length: 1 << 16 }, (_, i) => (i * 7919 + 13) % 251))),
    expect: ['reject:UNSUPPORTED_TYPE'],
  },
  {
    name: 'page.html.jpg',
    make: () => fs.writeFileSync(f('page.html.jpg'), '<!doctype html><html><body><img src=x></body></html>'),
    expect: ['reject:UNSUPPORTED_TYPE'],
  },
  {
    name: 'drawing.svg',
    make: () => fs.writeFileSync(f('drawing.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    expect: ['reject:UNSUPPORTED_TYPE'],
  },
  {
    name: 'archive.zip',
    make: () => fs.writeFileSync(f('archive.zip'), Buffer.from('504b0506000000000000000000000000000000000000', 'hex')),
    expect: ['reject:UNSUPPORTED_TYPE'],
  },
  {
    name: 'empty.pdf',
    make: () => fs.writeFileSync(f('empty.pdf'), ''),
    expect: ['reject:EMPTY_FILE'],
  },
  {
    name: 'checksum.jpg',
    make: () => fs.copyFileSync(corpus('image/320x240.jpg'), f('checksum.jpg')),
    args: ['--sha256', '0'.repeat(64)],
    expect: ['reject:CHECKSUM_MISMATCH'],
  },
  {
    name: 'does-not-exist.jpg',
    make: () => undefined,
    expect: ['reject:FILE_NOT_FOUND'],
  },
  {
    name: 'a-directory.png',
    make: () => fs.mkdirSync(f('a-directory.png')),
    expect: ['reject:FILE_NOT_FOUND'],
  },
];

beforeAll(async () => {
  dir = tempDir('real-world');
  dataDir = tempDir('real-world-data');
  for (const c of cases) await c.make();
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('files beyond the corpus', () => {
  // These files test formats and damage, not models: the detector and the recognizer stay off. 90 s is a hang
  // guard, not a speed check.
  test.concurrent.for(cases)('$name → $expect', { timeout: 300_000 }, async (c) => {
    const env = { DATA_DIR: dataDir, AI_PROVIDERS: 'vision=off,speech=off' };
    const res = await runCli(['process', '--json', ...(c.args ?? []), f(c.name)], env, 240_000);
    expect(res.stdout, res.stderr).not.toBe('');
    const doc = JSON.parse(res.stdout) as JobDocument;
    expect(doc.error?.code).not.toBe('INTERNAL');
    expect(c.expect, JSON.stringify(doc.error ?? doc.steps)).toContain(outcomeOf(doc));
    if (doc.error) expect(doc.error.message).not.toContain(dir);
    c.check?.(doc);
  });
});
