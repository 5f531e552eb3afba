/**
 * Web renditions and storyboards, with real ffmpeg on videos made here: an AVI (MPEG-4 Part 2 + MP3), a MOV (MJPEG +
 * PCM, turned a quarter), an MKV (VP9/Opus at 60 fps) each get an H.264/AAC MP4 with its index first, upright, within
 * 720p and 30 fps, as long as the source to 1 %; an MP4 that already plays is left alone (with the reason), or copied
 * without its location; a running transcode reports progress and stops when the job is cancelled; SIGKILL in the
 * middle of a transcode leaves no artifact and the resumed job makes it; storyboard cues point inside the sprite;
 * artifacts and the playable original answer range requests with 206.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ArtifactStore } from '../src/lib/artifacts.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { storyboardLayout } from '../src/nodes/storyboard.js';
import {
  BIN,
  dropPrefix,
  ffmpegWorkingFor,
  runCli,
  serviceOn,
  stepRuns,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  userEnv,
  waitFor,
  type ServiceProcess,
} from './helpers.js';

const { ffmpeg, ffprobe } = resolveToolPaths();
const prefix = uniquePrefix('playback');
let dir: string;
let state: TestState;
let service: ServiceProcess;
let base: string;

const ff = (args: string[]): void => {
  execFileSync(ffmpeg, ['-v', 'error', '-y', ...args]);
};

interface Probed {
  format: { format_name: string; duration: string; tags?: Record<string, string> };
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    avg_frame_rate?: string;
    tags?: Record<string, string>;
    side_data_list?: { rotation?: number }[];
  }[];
}

function probe(file: string): Probed {
  const out = execFileSync(ffprobe, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file]);
  return JSON.parse(out.toString()) as Probed;
}

/** The order of the top-level boxes, as ffprobe's own MP4 reader logs them (not this project's reader). */
function boxOrder(file: string): string[] {
  const log = spawnSync(ffprobe, ['-v', 'trace', '-i', file], {
    encoding: 'latin1',
    maxBuffer: 64 * 1024 * 1024,
  }).stderr;
  return [...log.matchAll(/type:'(moov|mdat)' parent:'root'/g)].map((m) => m[1]!);
}

const sources: Record<string, string> = {};

beforeAll(async () => {
  dir = tempDir('playback');
  const f = (name: string): string => (sources[name] = path.join(dir, name));
  // Four seconds each: enough for "within 1 %" of the duration to mean something, cheap to make and transcode.
  ff([
    ...['-f', 'lavfi', '-i', 'testsrc=size=640x480:rate=25:duration=4'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=4'],
    ...['-c:v', 'mpeg4', '-q:v', '5', '-c:a', 'libmp3lame', '-b:a', '96k', f('camera.avi')],
  ]);
  // 1024x768 MJPEG, stored a quarter turn from upright (a display matrix, as phones write it; set on a copy, where
  // ffmpeg writes it): the rendition is 720x960 after turning and scaling.
  const flat = path.join(dir, 'flat.mov');
  ff([
    ...['-f', 'lavfi', '-i', 'testsrc=size=1024x768:rate=30:duration=4'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=48000:duration=4'],
    ...['-c:v', 'mjpeg', '-q:v', '8', '-pix_fmt', 'yuvj422p', '-c:a', 'pcm_s16le', flat],
  ]);
  ff(['-i', flat, '-map', '0', '-c', 'copy', '-metadata:s:v:0', 'rotate=90', f('turned.mov')]);
  ff([
    ...['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=60:duration=4'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=550:sample_rate=48000:duration=4'],
    ...['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k'],
    ...['-c:a', 'libopus', '-b:a', '64k', f('clip60.mkv')],
  ]);
  const webReady = [
    ...['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=4'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=48000:duration=4'],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart'],
  ];
  ff([...webReady, f('ready.mp4')]);
  // The same, recorded somewhere: playable as it is, but not to be served with its location.
  ff([...webReady, '-metadata', 'location=+48.8584+002.2945/', f('located.mp4')]);
  // Two frames (0.08 s): shorter than one storyboard interval, as phones' accidental clips are.
  ff([
    ...['-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25:duration=0.08'],
    ...['-c:v', 'mpeg4', '-q:v', '5', f('blink.avi')],
  ]);
  // Long enough to be caught in the middle: a minute at 30 fps, no sound (no audio steps to wait for).
  ff([
    ...['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=60'],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', f('long.mkv')],
  ]);
  state = await TestState.create('playback');
  ({ service, base } = await serviceOn(state, prefix, { INPUT_ROOTS: dir }));
}, 240_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function submit(file: string, instructions?: unknown): Promise<string> {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: file }, ...(instructions ? { instructions } : {}) }),
  });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function finished(id: string): Promise<JobDocument> {
  return waitFor(
    `job ${id} to end`,
    async () => {
      const doc = await storedJob(state, id);
      return doc && ['completed', 'completed_with_errors', 'failed', 'cancelled'].includes(doc.status) && doc;
    },
    240_000,
  );
}

const artifactPath = (id: string, name: string): string => path.join(state.dataDir, 'artifacts', id, name);

describe('renditions', () => {
  const cases = [
    { file: 'camera.avi', height: 480, width: 640, fps: 25 },
    { file: 'turned.mov', height: 960, width: 720, fps: 30 },
    { file: 'clip60.mkv', height: 240, width: 320, fps: 30 },
  ];
  test.concurrent.each(cases)(
    '$file gives an H.264/AAC MP4 with faststart, upright, within 720p and 30 fps, as long as the source',
    { timeout: 300_000 },
    async ({ file, width, height, fps }) => {
      const id = await submit(sources[file]!);
      const doc = await finished(id);
      expect(doc.steps.transcodeVideo, JSON.stringify(doc.steps)).toMatchObject({ status: 'succeeded' });
      const out = artifactPath(id, 'video.mp4');
      const p = probe(out);
      const v = p.streams.find((s) => s.codec_type === 'video')!;
      const a = p.streams.find((s) => s.codec_type === 'audio')!;
      expect(p.format.format_name).toContain('mp4');
      expect([v.codec_name, v.pix_fmt, a.codec_name]).toEqual(['h264', 'yuv420p', 'aac']);
      expect({ width: v.width, height: v.height }).toEqual({ width, height });
      expect(Math.min(v.width!, v.height!)).toBeLessThanOrEqual(720);
      // Upright: no rotation left for the player to apply.
      expect(v.tags?.rotate ?? '0').toBe('0');
      expect(v.side_data_list?.find((d) => d.rotation)?.rotation ?? 0).toBe(0);
      const [num, den] = v.avg_frame_rate!.split('/').map(Number);
      expect(num! / den!).toBeCloseTo(fps, 0);
      expect(boxOrder(out)).toEqual(['moov', 'mdat']);
      const source = Number(probe(sources[file]!).format.duration);
      expect(Math.abs(Number(p.format.duration) - source) / source).toBeLessThan(0.01);
      expect(doc.results.video).toMatchObject({
        url: `/jobs/${id}/artifacts/video.mp4`,
        mode: 'transcode',
        videoCodec: 'h264',
        audioCodec: 'aac',
        width,
        height,
        bytes: fs.statSync(out).size,
      });
      // Nothing of the source's own tags: only what the muxer itself writes.
      expect(
        Object.keys(p.format.tags ?? {}).filter(
          (k) => !/^(major_brand|minor_version|compatible_brands|encoder)$/.test(k),
        ),
      ).toEqual([]);
    },
  );

  test('an MP4 that already plays everywhere is left as it is, with the reason, and served with ranges', async () => {
    const id = await submit(sources['ready.mp4']!);
    const doc = await finished(id);
    expect(doc.status).toBe('completed');
    expect(doc.steps.transcodeVideo?.status).toBe('skipped');
    expect(doc.steps.transcodeVideo?.reason).toMatch(
      /^no rendition required: it is already H\.264\/AAC MP4 with faststart within 720p/,
    );
    expect(doc.results.video).toBeUndefined();
    expect(fs.existsSync(artifactPath(id, 'video.mp4'))).toBe(false);
    // The dashboard plays the original, which answers range requests.
    const original = fs.readFileSync(sources['ready.mp4']!);
    const res = await fetch(`${base}/jobs/${id}/original`, { headers: { range: 'bytes=100-1099' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    expect(res.headers.get('content-range')).toBe(`bytes 100-1099/${original.length}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(original.subarray(100, 1100))).toBe(true);
    // A job that needed a rendition has no original to play.
    const avi = await submit(sources['camera.avi']!);
    await finished(avi);
    expect((await fetch(`${base}/jobs/${avi}/original`)).status).toBe(404);
  });

  test('the job can ask for a rendition anyway, or for none', async () => {
    const [always, never] = await Promise.all([
      submit(sources['ready.mp4']!, { video: { transcode: 'always', maxHeight: 144, hls: true } }),
      submit(sources['camera.avi']!, { video: { transcode: 'never' } }),
    ]);
    const [a, n] = [await finished(always), await finished(never)];
    expect(a.results.video).toMatchObject({ mode: 'transcode', width: 192, height: 144 });
    // The HLS playlist it asked for: fMP4 segments, a VOD playlist, each served with its type, playable as a whole.
    const hls = a.results.video!.hls!;
    expect(hls.url).toBe(`/jobs/${always}/artifacts/hls.m3u8`);
    expect(hls.segments).toBeGreaterThan(0);
    const playlist = await fetch(`${base}${hls.url}`);
    expect(playlist.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    const text = await playlist.text();
    expect(text).toMatch(/#EXT-X-PLAYLIST-TYPE:VOD/);
    expect(text).toMatch(/#EXT-X-MAP:URI="hls-init\.mp4"/);
    expect(text).toMatch(/#EXT-X-ENDLIST/);
    const segments = text.split('\n').filter((l) => /^hls-\d+\.m4s$/.test(l));
    expect(segments).toHaveLength(hls.segments);
    for (const [name, type] of [...segments.map((n) => [n, 'video/iso.segment']), ['hls-init.mp4', 'video/mp4']]) {
      const res = await fetch(`${base}/jobs/${always}/artifacts/${name}`);
      expect([name, res.status, res.headers.get('content-type')]).toEqual([name, 200, type]);
    }
    const played = JSON.parse(
      execFileSync(ffprobe, ['-v', 'error', '-print_format', 'json', '-show_format', `${base}${hls.url}`]).toString(),
    ) as Probed;
    expect(Math.abs(Number(played.format.duration) - 4) / 4).toBeLessThan(0.01);
    expect(n.steps.transcodeVideo).toMatchObject({
      status: 'skipped',
      reason: "no rendition: the job's instructions say never",
    });
  });

  test('a playable MP4 with a location is copied without it, not encoded again', async () => {
    expect(probe(sources['located.mp4']!).format.tags?.location).toBeDefined();
    const id = await submit(sources['located.mp4']!);
    const doc = await finished(id);
    expect(doc.results.video).toMatchObject({ mode: 'remux', videoCodec: 'h264', audioCodec: 'aac' });
    const p = probe(artifactPath(id, 'video.mp4'));
    expect(JSON.stringify(p.format.tags ?? {})).not.toMatch(/48\.8584|location/i);
    expect(boxOrder(artifactPath(id, 'video.mp4'))).toEqual(['moov', 'mdat']);
  });
});

describe('storyboard', () => {
  test('every cue points at a tile inside the sprite, and the cues cover the video', async () => {
    const id = await submit(sources['long.mkv']!, { video: { transcode: 'never' } });
    const doc = await finished(id);
    const sb = doc.results.storyboard!;
    expect(sb).toMatchObject({ tiles: 60, columns: 10, rows: 6, tileWidth: 160, tileHeight: 90, intervalSec: 1 });
    const sprite = await sharp(artifactPath(id, 'storyboard.jpg')).metadata();
    expect({ width: sprite.width, height: sprite.height }).toEqual({ width: 1600, height: 540 });
    const vtt = fs.readFileSync(artifactPath(id, 'storyboard.vtt'), 'utf8');
    expect(vtt.startsWith('WEBVTT\n')).toBe(true);
    const cues = [...vtt.matchAll(/([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)/g)];
    expect(cues).toHaveLength(sb.tiles);
    const seconds = (t: string): number => t.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
    let previousEnd = 0;
    for (const [, start, end, image, x, y, w, h] of cues) {
      expect(image).toBe('storyboard.jpg');
      expect(seconds(start!)).toBeCloseTo(previousEnd, 3);
      previousEnd = seconds(end!);
      expect(Number(x) + Number(w)).toBeLessThanOrEqual(sprite.width);
      expect(Number(y) + Number(h)).toBeLessThanOrEqual(sprite.height);
    }
    expect(previousEnd).toBeCloseTo(doc.results.metadata!.durationSec!, 2);
    // The tiles are frames, not padding: the last one used is not black.
    const [, , , , x, y, w, h] = cues.at(-1)!;
    const tile = await sharp(artifactPath(id, 'storyboard.jpg'))
      .extract({ left: Number(x), top: Number(y), width: Number(w), height: Number(h) })
      .stats();
    expect(tile.channels[0]!.mean).toBeGreaterThan(20);
  });

  test('a video shorter than one interval gets one tile: its first frame', async () => {
    const id = await submit(sources['blink.avi']!, { video: { transcode: 'never' } });
    const doc = await finished(id);
    expect(doc.steps.storyboard).toMatchObject({ status: 'succeeded' });
    expect(doc.status).toBe('completed');
    expect(doc.results.storyboard).toMatchObject({ tiles: 1, columns: 1, rows: 1, tileWidth: 160, tileHeight: 120 });
    const sprite = await sharp(artifactPath(id, 'storyboard.jpg')).stats();
    // testsrc's colour bars, not an empty tile.
    expect(sprite.channels[0]!.mean).toBeGreaterThan(20);
  });

  test('a long video gets at most 100 tiles, spread over its length', () => {
    expect(storyboardLayout(7200, 1920, 1080)).toMatchObject({ tiles: 100, intervalSec: 72, columns: 10, rows: 10 });
    expect(storyboardLayout(2.5, 1080, 1920)).toMatchObject({ tiles: 3, intervalSec: 1, tileHeight: 284 });
  });
});

describe('range requests', () => {
  test('an artifact answers 206 with the bytes asked for, 416 past its end', async () => {
    const id = await submit(sources['camera.avi']!);
    await finished(id);
    const file = fs.readFileSync(artifactPath(id, 'video.mp4'));
    const url = `${base}/jobs/${id}/artifacts/video.mp4`;
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await whole.arrayBuffer()).equals(file)).toBe(true);
    const part = await fetch(url, { headers: { range: 'bytes=1000-4999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-4999/${file.length}`);
    expect(part.headers.get('content-length')).toBe('4000');
    expect(Buffer.from(await part.arrayBuffer()).equals(file.subarray(1000, 5000))).toBe(true);
    const tail = await fetch(url, { headers: { range: 'bytes=-500' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(file.subarray(file.length - 500))).toBe(true);
    const past = await fetch(url, { headers: { range: `bytes=${file.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${file.length}`);
  });
});

describe('a transcode that does not finish', () => {
  test(
    'reports its progress, and a cancel stops its ffmpeg and leaves no rendition',
    { timeout: 300_000 },
    async () => {
      const id = await submit(sources['long.mkv']!, { skip: ['storyboard', 'posterFrame'] });
      const running = await waitFor(
        'transcodeVideo to report progress',
        async () => {
          const p = (await storedJob(state, id))?.steps.transcodeVideo;
          return p?.status === 'running' && (p.progress ?? 0) > 0 && p;
        },
        120_000,
      );
      expect(running.progress).toBeLessThan(100);
      expect(ffmpegWorkingFor(state, id)).toBe(true);
      expect((await fetch(`${base}/jobs/${id}/cancel`, { method: 'POST' })).status).toBe(202);
      const doc = await finished(id);
      expect(doc.status).toBe('cancelled');
      expect(doc.steps.transcodeVideo?.status).toBe('failed');
      await waitFor('ffmpeg to stop', () => !ffmpegWorkingFor(state, id), 10_000);
      const names = (await new ArtifactStore(path.join(state.dataDir, 'artifacts')).list(id)).map((a) => a.name);
      expect(names).not.toContain('video.mp4');
      expect(fs.readdirSync(path.join(state.dataDir, 'artifacts', id)).filter((n) => n.startsWith('video'))).toEqual(
        [],
      );
    },
  );

  test(
    'SIGKILL in the middle leaves no artifact; the resumed job transcodes from the start',
    { timeout: 400_000 },
    async () => {
      const own = await TestState.create('playback-kill');
      try {
        const jobId = 'killed-transcode';
        // The fastest preset: the resumed run transcodes the whole minute again.
        const env = {
          ...userEnv(),
          ...own.env,
          LOG_LEVEL: 'warn',
          DISABLED_STEPS: 'storyboard,posterFrame',
          VIDEO_PRESET: 'ultrafast',
        };
        // Its own process group, so that the kill reaches ffmpeg too, as when the machine goes down.
        const child = spawn(BIN, ['process', '--job-id', jobId, sources['long.mkv']!], {
          env,
          stdio: 'ignore',
          detached: true,
        });
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          child.on('exit', (_c, signal) => resolve(signal)),
        );
        await waitFor(
          'the transcode to be under way',
          async () => (await own.store()).get(jobId).then((d) => (d?.steps.transcodeVideo?.progress ?? 0) > 0),
          120_000,
        );
        process.kill(-child.pid!, 'SIGKILL');
        expect(await exited).toBe('SIGKILL');
        const artifacts = new ArtifactStore(path.join(own.dataDir, 'artifacts'));
        expect((await artifacts.list(jobId)).map((a) => a.name)).not.toContain('video.mp4');
        expect(fs.readdirSync(artifacts.dir(jobId)).filter((n) => n.startsWith('video'))).toEqual([]);
        // The killed execution's staging folder, with its partial file in it, is still there…
        const staged = fs.readdirSync(artifacts.dir(jobId)).filter((n) => n.startsWith('.run-'));
        expect(staged.length).toBeGreaterThan(0);

        const res = await runCli(['process', '--json', '--job-id', jobId, sources['long.mkv']!], env, 300_000);
        expect(res.code, res.stderr).toBe(0);
        const doc = JSON.parse(res.stdout) as JobDocument;
        expect(doc.steps.transcodeVideo?.status).toBe('succeeded');
        const runs = (await stepRuns(own, jobId)).filter((r) => r.step === 'transcodeVideo').map((r) => r.status);
        expect(runs).toEqual(['running', 'succeeded']);
        const p = probe(path.join(own.dataDir, 'artifacts', jobId, 'video.mp4'));
        expect(Math.abs(Number(p.format.duration) - 60) / 60).toBeLessThan(0.01);
        expect(boxOrder(path.join(own.dataDir, 'artifacts', jobId, 'video.mp4'))).toEqual(['moov', 'mdat']);
        // …and gone once the job has ended.
        expect(fs.readdirSync(artifacts.dir(jobId)).filter((n) => n.startsWith('.run-'))).toEqual([]);
      } finally {
        await own.drop();
      }
    },
  );
});
