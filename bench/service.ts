/**
 * Service benchmarks, each against a baseline measured in the same run:
 * - jobs/s through the queued service with no-op steps, against a plain BullMQ chain of as many no-op tasks;
 * - per-step dispatch latency (enqueue to result, the step itself doing nothing), p50 and p99;
 * - 40 phone-sized photos (4000x3000 JPEG) through the full service against a plain script doing the same image work
 *   with the same libraries two at a time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Queue, QueueEvents, Worker } from 'bullmq';
import sharp from 'sharp';
import { loadConfig, QUEUE_NAMES } from '../src/config.js';
import { STEP_POLICY } from '../src/graph/policy.js';
import { createLogger } from '../src/lib/log.js';
import { freePort } from '../src/lib/net.js';
import type { AnyStepName, StepName } from '../src/lib/types.js';
import type { StepOutcome } from '../src/nodes/index.js';
import { bullConnection, createRedis } from '../src/queue/connection.js';
import { startOrchestrator } from '../src/queue/orchestrator.js';
import { createProducer } from '../src/queue/producer.js';
import { QueuedDispatcher, type TaskData } from '../src/queue/queued-dispatcher.js';
import type { TaskResult } from '../src/queue/task-result.js';
import { createRuntime } from '../src/runtime.js';
import { startService } from '../src/service.js';
import { plainImageWork, plainPhotoWork } from './plain.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export async function dropPrefix(prefix: string): Promise<void> {
  const client = createRedis(REDIS_URL, 'worker');
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
  await client.quit();
}

/** Task workers on every queue of `prefix` that answer each step at once with success: steps that do nothing. */
export function noopWorkers(prefix: string): Worker<TaskData, TaskResult>[] {
  const noop = (step: AnyStepName): StepOutcome =>
    step === 'validate'
      ? {
          status: 'succeeded',
          fileType: 'image',
          fileInfo: { name: 'noop.bin', size: 1, mime: 'image/jpeg', ext: 'jpg', sha256: '0'.repeat(64) },
        }
      : { status: 'succeeded' };
  return QUEUE_NAMES.map(
    (name) =>
      new Worker<TaskData, TaskResult>(
        name,
        (job) => Promise.resolve({ outcome: noop(job.data.step), attempts: 1, runId: 0 }),
        { connection: bullConnection(REDIS_URL, 'worker'), prefix, concurrency: 20 },
      ),
  );
}

/**
 * The queued orchestrator (in this process) with workers whose steps do nothing: what orchestration and dispatch cost
 * by themselves. `env` adds configuration (DATABASE_URL for the PostgreSQL backend). Seconds for `jobs` jobs, and the
 * dispatch latency of every step.
 */
export async function noopService(
  dataDir: string,
  work: string,
  jobs: number,
  env: Record<string, string>,
): Promise<{ sec: number; latencies: number[] }> {
  const prefix = `mo-bench-noop-${process.pid}-${path.basename(dataDir)}`;
  const file = path.join(work, 'noop.bin');
  fs.writeFileSync(file, 'x');
  const config = loadConfig({
    DATA_DIR: dataDir,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: work,
    JOB_CONCURRENCY: '20',
    ...env,
  });
  const log = createLogger('warn');
  const latencies: number[] = [];
  const dispatcher = new QueuedDispatcher(config, REDIS_URL, log);
  await dispatcher.ready();
  const timed = {
    run: async (...args: Parameters<QueuedDispatcher['run']>) => {
      const t0 = performance.now();
      const result = await dispatcher.run(...args);
      latencies.push(performance.now() - t0);
      return result;
    },
  };
  const runtime = await createRuntime(config, log, { dispatcher: () => timed });
  const orchestrator = await startOrchestrator(runtime, REDIS_URL);
  const workers = noopWorkers(prefix);
  const producer = createProducer({ redisUrl: REDIS_URL, prefix });
  const events = new QueueEvents('jobs', { connection: bullConnection(REDIS_URL, 'worker'), prefix });
  await events.waitUntilReady();
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    events.on('completed', () => {
      if (++done === jobs) resolve();
    });
  });
  const t0 = performance.now();
  for (let i = 0; i < jobs; i++) await producer.enqueueJob({ jobId: `noop-${i}`, file: { path: file } });
  await finished;
  const serviceSec = (performance.now() - t0) / 1000;
  await orchestrator.close(5000);
  await Promise.all(workers.map((w) => w.close()));
  await events.close();
  await producer.close();
  await dispatcher.close();
  await runtime.close();
  await dropPrefix(prefix);
  return { sec: serviceSec, latencies };
}

export async function benchNoop(
  work: string,
  jobs: number,
  row: (l: string, v: string) => void,
  runs = 3,
): Promise<void> {
  const plain: number[] = [];
  const service: number[] = [];
  const ratios: number[] = [];
  const p50: number[] = [];
  const p99: number[] = [];
  for (let r = 0; r < runs; r++) {
    const { sec: serviceSec, latencies } = await noopService(path.join(work, `noop-${r}`), work, jobs, {});
    const plainSec = await plainChain(`mo-bench-noop-${process.pid}-plain-${r}`, jobs);
    plain.push(jobs / plainSec);
    service.push(jobs / serviceSec);
    ratios.push(plainSec / serviceSec);
    p50.push(percentile(latencies, 50));
    p99.push(percentile(latencies, 99));
  }
  row(`plain BullMQ chain, 4 no-op tasks a job (baseline)`, `${spread(plain, 1)} jobs/s`);
  row(`service, no-op steps (graph, checkpoints, store)`, `${spread(service, 1)} jobs/s`);
  row('ratio service / plain chain', spread(ratios, 2));
  row(`per-step dispatch latency p50 (${jobs * 4} steps a run)`, `${spread(p50, 1)} ms`);
  row(`per-step dispatch latency p99`, `${spread(p99, 1)} ms`);
}

/** "median (min-max, n runs)": the machine is shared, so one run says little. */
export function spread(values: number[], digits: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  if (sorted.length === 1) return median.toFixed(digits);
  const range = `${sorted[0]!.toFixed(digits)}-${sorted.at(-1)!.toFixed(digits)}`;
  return `${median.toFixed(digits)} (${range}, ${sorted.length} runs)`;
}

/** Seconds for `jobs` jobs as a plain BullMQ chain of the same DAG: validate, extractMetadata, then two in parallel. */
async function plainChain(plainPrefix: string, jobs: number): Promise<number> {
  const steps: StepName[][] = [['validate'], ['extractMetadata'], ['generateThumbnails', 'analyzeImage']];
  const queues = new Map(
    QUEUE_NAMES.map((n) => [
      n,
      new Queue(n, { connection: bullConnection(REDIS_URL, 'producer'), prefix: plainPrefix }),
    ]),
  );
  const plainWorkers = QUEUE_NAMES.map(
    (name) =>
      new Worker(name, () => Promise.resolve({ ok: true }), {
        connection: bullConnection(REDIS_URL, 'worker'),
        prefix: plainPrefix,
        concurrency: 20,
      }),
  );
  for (const q of queues.values()) q.setMaxListeners(100);
  const plainEvents = new Map(
    QUEUE_NAMES.map((n) => [
      n,
      new QueueEvents(n, { connection: bullConnection(REDIS_URL, 'worker'), prefix: plainPrefix }),
    ]),
  );
  for (const e of plainEvents.values()) e.setMaxListeners(100);
  await Promise.all([...plainEvents.values()].map((e) => e.waitUntilReady()));
  const t1 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < jobs) {
        const i = next++;
        for (const group of steps) {
          await Promise.all(
            group.map(async (step) => {
              const queue = STEP_POLICY[step].queue;
              const job = await queues.get(queue)!.add(step, {}, { jobId: `${i}-${step}` });
              await job.waitUntilFinished(plainEvents.get(queue)!);
            }),
          );
        }
      }
    }),
  );
  const plainSec = (performance.now() - t1) / 1000;
  await Promise.all(plainWorkers.map((w) => w.close()));
  await Promise.all([...plainEvents.values()].map((e) => e.close()));
  await Promise.all([...queues.values()].map((q) => q.close()));
  await dropPrefix(plainPrefix);
  return plainSec;
}

export async function makePhotos(dir: string, count: number, noisy = true): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    // Smooth gradients plus noise: a camera-like JPEG of a few MB, different for every photo.
    const w = 400;
    const h = 300;
    const raw = Buffer.alloc(w * h * 3);
    for (let p = 0; p < w * h; p++) {
      const x = p % w;
      const y = Math.floor(p / w);
      raw[p * 3] = (x + i * 13) & 255;
      raw[p * 3 + 1] = (y * 2 + i * 7) & 255;
      raw[p * 3 + 2] = ((x ^ y) + ((p * 2654435761) >>> 28)) & 255;
    }
    const file = path.join(dir, `phone-${String(i).padStart(2, '0')}.jpg`);
    const base = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .resize(4000, 3000, { kernel: 'cubic' })
      .png({ compressionLevel: 0 })
      .toBuffer();
    if (!noisy) {
      // Smooth: what a phone's denoised output of a plain scene is close to; small and quick to decode, so what
      // the service adds around the decoding shows most.
      await sharp(base)
        .jpeg({ quality: 90 })
        .withMetadata({ orientation: 6, exif: { IFD0: { Make: 'Bench', Model: 'Phone' } } })
        .toFile(file);
      files.push(file);
      continue;
    }
    // Sensor-like noise: without it the JPEG is unrealistically small and cheap to decode.
    const noise = await sharp({
      create: {
        width: 4000,
        height: 3000,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 24 },
      },
    })
      .png({ compressionLevel: 0 })
      .toBuffer();
    await sharp(base)
      .composite([{ input: noise, blend: 'soft-light' }])
      .jpeg({ quality: 90 })
      .withMetadata({ orientation: 6, exif: { IFD0: { Make: 'Bench', Model: 'Phone' } } })
      .toFile(file);
    files.push(file);
  }
  return files;
}

/**
 * Seconds for the service (all roles, one process) to finish `photos`, with extra configuration. `stepMs`, when
 * given, receives each step's mean execution time in ms over the photos.
 */
export async function photosThroughService(
  work: string,
  photos: string[],
  name: string,
  env: Record<string, string>,
  stepMs?: Map<string, number>,
): Promise<number> {
  const prefix = `mo-bench-photos-${name}-${process.pid}`;
  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(work, `svc-${name}`),
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: work,
    REDIS_URL,
    LOG_LEVEL: 'warn',
    ...env,
  });
  const service = await startService(config, createLogger('warn'), { role: 'all', queues: QUEUE_NAMES });
  // Let the step threads load before the clock starts, as in a running service.
  await new Promise((r) => setTimeout(r, 3000));
  const producer = createProducer({ redisUrl: REDIS_URL, prefix });
  const events = new QueueEvents('jobs', { connection: bullConnection(REDIS_URL, 'worker'), prefix });
  await events.waitUntilReady();
  let done = 0;
  const statuses: string[] = [];
  const finished = new Promise<void>((resolve) => {
    events.on('completed', ({ returnvalue }) => {
      statuses.push((returnvalue as unknown as { status: string }).status);
      if (++done === photos.length) resolve();
    });
  });
  const t1 = performance.now();
  for (const [i, file] of photos.entries()) await producer.enqueueJob({ jobId: `photo-${i}`, file: { path: file } });
  await finished;
  const serviceSec = (performance.now() - t1) / 1000;
  await events.close();
  await producer.close();
  if (stepMs && service.runtime) {
    // Executions (step_runs: from the step's start in its thread to its end), not the documents' step times, which
    // also count the wait in the task queue.
    const store = service.runtime.store;
    const runs = (await Promise.all(photos.map((_, i) => store.runs(`photo-${i}`)))).flat();
    for (const step of new Set(runs.map((r) => r.step))) {
      const ms = runs
        .filter((r) => r.step === step && r.finishedAt)
        .map((r) => Date.parse(r.finishedAt!) - Date.parse(r.startedAt));
      stepMs.set(step, ms.reduce((n, d) => n + d, 0) / ms.length);
    }
  }
  await service.stop();
  await dropPrefix(prefix);
  const bad = statuses.filter((s) => s !== 'completed');
  if (bad.length > 0) throw new Error(`photo jobs did not complete: ${bad.join(', ')}`);
  return serviceSec;
}

export async function benchPhotos(
  work: string,
  count: number,
  row: (l: string, v: string) => void,
  runs = 3,
): Promise<void> {
  // Against the plain script a user would write (one read, the type, metadata, three thumbnails from one decode),
  // with the service doing the same work: no image analysis.
  let noisyPhotos: string[] = [];
  for (const noisy of [false, true]) {
    const kind = noisy ? 'noisy' : 'smooth';
    const photos = await makePhotos(path.join(work, `photos-${kind}`), count, noisy);
    if (noisy) noisyPhotos = photos;
    const bytes = photos.reduce((n, f) => n + fs.statSync(f).size, 0);
    const plain: number[] = [];
    const service: number[] = [];
    const ratios: number[] = [];
    const stepMs = new Map<string, number>();
    for (let r = 0; r < runs; r++) {
      const plainSec = await twoAtATime(photos, path.join(work, `plain-${kind}-${r}`), plainPhotoWork);
      const serviceSec = await photosThroughService(
        work,
        photos,
        `${kind}-${r}`,
        { DISABLED_STEPS: 'analyzeImage' },
        stepMs,
      );
      plain.push(plainSec);
      service.push(serviceSec);
      ratios.push(plainSec / serviceSec);
    }
    row(`${count} ${kind} phone photos (4000x3000 JPEG, ${(bytes / count / 1e6).toFixed(1)} MB avg)`, '');
    row('  plain script: one read, one decode, 3 thumbnails (baseline)', `${spread(plain, 1)} s`);
    row('  service, DISABLED_STEPS=analyzeImage', `${spread(service, 1)} s`);
    row('  ratio plain / service (goal >= 0.9)', spread(ratios, 2));
    // Where a photo's time goes in the service (last run; steps of one job run one after another, two jobs at once).
    const steps = [...stepMs].map(([s, ms]) => `${s} ${ms.toFixed(0)}`).join(', ');
    row('  service step execution per photo, mean ms (last run)', steps);
  }

  // The heavier baseline of earlier rounds: the plain script also decodes to validate, reads EXIF and computes the
  // statistics; the service runs analyzeImage with the detector off, then with it.
  const photos = noisyPhotos;
  const plainSec = await twoAtATime(photos, path.join(work, 'plain-heavy'), plainImageWork);
  const serviceSec = await photosThroughService(work, photos, 'stats', { AI_PROVIDERS: 'vision=off' });
  const detectorSec = await photosThroughService(work, photos, 'detector', {});
  row(`${count} noisy photos, the heavier baseline (one run)`, '');
  row('  plain script with decode check, EXIF and statistics', `${plainSec.toFixed(1)} s`);
  row('  service, analyzeImage with the detector off', `${serviceSec.toFixed(1)} s`);
  row('  ratio plain / service', (plainSec / serviceSec).toFixed(2));
  row('  service with the offline object/face detector', `${detectorSec.toFixed(1)} s`);
  row('  detector cost: ratio without / with', (serviceSec / detectorSec).toFixed(2));
}

/** Seconds for `work` over `photos`, two at a time in this process (as the service's two cores would). */
async function twoAtATime(
  photos: string[],
  out: string,
  work: (file: string, out: string) => Promise<void>,
): Promise<number> {
  fs.mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (next < photos.length) await work(photos[next++]!, out);
    }),
  );
  return (performance.now() - t0) / 1000;
}

/**
 * GET /jobs/:id latency under concurrent load, idle (baseline) and while the same service processes phone photos:
 * the API shares the process with the orchestrator and workers (`start --role all`), so this is what media work costs
 * the status API.
 */
export async function benchApi(work: string, photoCount: number, row: (l: string, v: string) => void): Promise<void> {
  const photos = await makePhotos(path.join(work, 'api-photos'), photoCount);
  const prefix = `mo-bench-api-${process.pid}`;
  const port = await freePort();
  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(work, 'api-svc'),
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: work,
    REDIS_URL,
    PORT: String(port),
    LOG_LEVEL: 'warn',
  });
  const service = await startService(config, createLogger('warn'), { role: 'all', queues: QUEUE_NAMES });
  const base = `http://127.0.0.1:${port}`;
  const producer = createProducer({ redisUrl: REDIS_URL, prefix });
  await producer.enqueueJob({ jobId: 'probe', file: { path: photos[0]! } });
  await new Promise((r) => setTimeout(r, 3000));

  const load = async (durationMs: number, concurrency: number): Promise<number[]> => {
    const latencies: number[] = [];
    const end = Date.now() + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < end) {
          const t0 = performance.now();
          const res = await fetch(`${base}/jobs/probe`);
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    return latencies;
  };

  const idle = await load(5000, 16);
  for (const [i, file] of photos.entries())
    await producer.enqueueJob({ jobId: `api-photo-${i}`, file: { path: file } });
  const busy = await load(8000, 16);
  await producer.close();
  await service.stop();
  await dropPrefix(prefix);

  row('GET /jobs/:id, 16 concurrent clients', '');
  row(
    '  idle service (baseline) p50 / p99',
    `${percentile(idle, 50).toFixed(1)} / ${percentile(idle, 99).toFixed(1)} ms (${idle.length} requests)`,
  );
  row(
    `  while processing ${photoCount} phone photos p50 / p99`,
    `${percentile(busy, 50).toFixed(1)} / ${percentile(busy, 99).toFixed(1)} ms (${busy.length} requests)`,
  );
  row('  p99 ratio busy / idle', (percentile(busy, 99) / percentile(idle, 99)).toFixed(2));
}
