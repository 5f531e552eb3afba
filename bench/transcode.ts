/**
 * `-- --only transcode`: the web rendition of a 30 s 1080p30 clip (H.264 + AAC, made here from ffmpeg's test source
 * with a little noise per frame, so that the encoder has detail to work on) at the default preset and CRF, as
 * transcodeVideo runs it in a job, against the same ffmpeg command run by hand (the baseline: what the step adds).
 * Speed is "x real time": seconds of video per second of work; above 1 the rendition is ready before the video
 * could have been watched.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_X264_PRESET, loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { createRuntime } from '../src/runtime.js';

const CLIP_SEC = 30;

export async function benchTranscode(work: string, row: (label: string, value: string) => void): Promise<void> {
  const { ffmpeg } = resolveToolPaths();
  const clip = path.join(work, 'clip-1080p.mp4');
  execFileSync(ffmpeg, [
    ...[
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1920x1080:rate=30:duration=${CLIP_SEC},noise=alls=2:allf=t`,
    ],
    ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${CLIP_SEC}`],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '20', '-c:a', 'aac', clip],
  ]);
  const load = (): string => os.loadavg()[0]!.toFixed(1);

  const plainStarted = performance.now();
  execFileSync(ffmpeg, [
    ...['-v', 'error', '-y', '-i', clip, '-vf', 'scale=-2:720,format=yuv420p'],
    ...['-c:v', 'libx264', '-preset', DEFAULT_X264_PRESET, '-crf', '23', '-profile:v', 'high'],
    ...['-c:a', 'aac', '-b:a', '128k', '-movflags', '+faststart', path.join(work, 'plain.mp4')],
  ]);
  const plainSec = (performance.now() - plainStarted) / 1000;
  const plainLoad = load();

  const runtime = await createRuntime(
    loadConfig({
      DATA_DIR: path.join(work, 'transcode-data'),
      VIDEO_TRANSCODE: 'always',
      // The rendition alone: the other video steps would share the cores with it.
      DISABLED_STEPS: 'posterFrame,extractAudio,storyboard',
    }),
    createLogger('warn'),
  );
  try {
    const doc = await runtime.runner.run({ jobId: 'bench-transcode', file: { path: clip } });
    const step = doc.steps.transcodeVideo;
    if (step?.status !== 'succeeded' || !doc.results.video)
      throw new Error(`transcodeVideo did not succeed: ${JSON.stringify(step)}`);
    const stepSec = step.durationMs! / 1000;
    const v = doc.results.video;
    row(
      `plain ffmpeg, ${DEFAULT_X264_PRESET} CRF 23 (baseline; load ${plainLoad})`,
      `${(CLIP_SEC / plainSec).toFixed(2)} x real time`,
    );
    row(`transcodeVideo in a job (load ${load()})`, `${(CLIP_SEC / stepSec).toFixed(2)} x real time`);
    row('ratio step / plain', (plainSec / stepSec).toFixed(2));
    row(
      'rendition',
      `${v.width}x${v.height}, ${(v.bytes / 1024 / 1024).toFixed(1)} MiB, ${v.durationSec?.toFixed(2)} s`,
    );
  } finally {
    await runtime.close();
    fs.rmSync(path.join(work, 'transcode-data'), { recursive: true, force: true });
  }
}
