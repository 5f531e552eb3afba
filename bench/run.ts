/**
 * npm run bench [-- --jobs N]: inline throughput and checkpoint database growth, and the sections of --only.
 *
 * The machine is shared and noisy, so absolute numbers mean little: every figure is printed next to a baseline
 * measured in the same run. Baseline: a plain script doing the same image work with the same libraries (file-type,
 * sha256, sharp decode check, metadata, exifr, three WebP thumbnails, statistics), as a queue script without
 * orchestration would, at the same concurrency (bench/plain.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { createRuntime } from '../src/runtime.js';
import { plainImageWork } from './plain.js';
import { benchVision } from './vision.js';
import { benchMemory } from './memory.js';
import { benchSoak } from './soak.js';
import { benchCli } from './cli.js';
import { benchCold } from './cold.js';
import { benchDuplicates } from './duplicates.js';
import { benchHeic } from './heic.js';
import { benchBackends, benchScaling } from './postgres.js';
import { benchOcr } from './ocr.js';
import { benchPeople } from './people.js';
import { benchSearch } from './search.js';
import { benchApi, benchNoop, benchPhotos } from './service.js';
import { benchTranscode } from './transcode.js';
import { benchWaveform } from './waveform.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '2' },
    only: {
      type: 'string',
      default: 'cli,cold,inline,vision,heic,ocr,service,photos,api,memory,postgres,scaling,search,waveform,transcode',
    },
    // Scanned pages of the OCR figures.
    'ocr-pages': { type: 'string', default: '5' },
    'memory-jobs': { type: 'string', default: '1000' },
    'memory-window': { type: 'string', default: '120' },
    // Corpus folders to draw the jobs from (image, video, audio, pdf): which kind of work holds the memory.
    'memory-types': { type: 'string' },
    // Extra environment for the measured process, K=V[,K=V]: STEP_THREADS=1, MALLOC_ARENA_MAX=8, ...
    'memory-env': { type: 'string' },
    // The soak is not in the default set: 10,000 jobs take hours on two cores.
    'soak-jobs': { type: 'string', default: '10000' },
    photos: { type: 'string', default: '40' },
    // Runs of the no-op and photo figures: each is printed as the median with the range.
    runs: { type: 'string', default: '3' },
    // Jobs indexed for the search figures, and how many searches are sent at once (a comma list: one figure each).
    'search-jobs': { type: 'string', default: '300' },
    'search-clients': { type: 'string', default: '8' },
    // Perceptual hashes registered for the duplicate lookup figures (not in the default set: a million take minutes).
    'duplicate-hashes': { type: 'string', default: '1000000' },
    'duplicate-backends': { type: 'string', default: 'sqlite,postgres' },
    // Faces already in one owner's scope for the people figures (not in the default set), a comma list.
    'people-faces': { type: 'string', default: '1000,10000,100000' },
  },
});
const ONLY = new Set(values.only.split(','));
const JOBS = Number(values.jobs);
const CONCURRENCY = Number(values.concurrency);
const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'corpus');

const images = fs
  .readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .filter(([, expect]) => expect === 'image')
  .map(([p]) => path.join(CORPUS, p!));

async function pool(n: number, work: (i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await work(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

const row = (label: string, value: string) => console.log(`${label.padEnd(58)} ${value}`);

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mo-bench-'));
  try {
    console.log(
      `media-orchestrator bench (${[...ONLY].join(', ')}); node ${process.version}, ${os.cpus().length} cores`,
    );
    if (ONLY.has('cli')) {
      console.log('\n## Command line start-up');
      benchCli(work, CORPUS, row);
    }
    if (ONLY.has('cold')) {
      console.log('\n## First jobs on a fresh `start` against the same steps warm');
      await benchCold(work, CORPUS, row);
    }
    if (ONLY.has('inline')) {
      console.log(`\n## Inline: ${JOBS} jobs over ${images.length} corpus images, concurrency ${CONCURRENCY}`);
      await benchInline(work);
    }
    if (ONLY.has('vision')) {
      console.log('\n## Offline object and face detector (@vladmandic/human on tfjs-wasm), one thread');
      const v = await benchVision();
      row('model load', `${v.loadMs.toFixed(0)} ms`);
      row(`detection, mean over ${v.images} corpus photos at 1024 px`, `${v.msPerImage.toFixed(0)} ms per image`);
      row(`the group photo (14 faces by eye), mean of three`, `${v.msPerGroup} ms, ${v.groupFaces} faces`);
    }
    if (ONLY.has('heic')) {
      console.log('\n## HEIC photos: libheif in WebAssembly, one decode at a time');
      await benchHeic(work, CORPUS, row);
    }
    if (ONLY.has('ocr')) {
      console.log('\n## OCR (tesseract.js, offline): scanned PDF pages and photos without text');
      await benchOcr(work, CORPUS, Number(values['ocr-pages']), row);
    }
    if (ONLY.has('service')) {
      console.log(`\n## Service with no-op steps: ${JOBS} jobs`);
      await benchNoop(work, JOBS, row, Number(values.runs));
    }
    if (ONLY.has('photos')) {
      console.log('\n## Phone photos through the service');
      await benchPhotos(work, Number(values.photos), row, Number(values.runs));
    }
    if (ONLY.has('api')) {
      console.log('\n## Status API under load');
      await benchApi(work, 20, row);
    }
    if (ONLY.has('postgres')) {
      console.log('\n## PostgreSQL backend (DATABASE_URL) against SQLite');
      await benchBackends(work, JOBS, Number(values.photos), row);
    }
    if (ONLY.has('scaling')) {
      console.log('\n## Scaling out: separate `start --role` processes on Redis and PostgreSQL');
      await benchScaling(work, JOBS, Number(values.photos), row);
    }
    if (ONLY.has('search')) {
      console.log('\n## Search under load: broad prefixes over long transcripts, beside the API');
      const clients = values['search-clients'].split(',').map(Number);
      await benchSearch(work, Number(values['search-jobs']), clients, row);
    }
    if (ONLY.has('duplicates')) {
      console.log('\n## Near-duplicate lookup: multi-index hashing over four 16-bit parts');
      await benchDuplicates(work, Number(values['duplicate-hashes']), row, values['duplicate-backends'].split(','));
    }
    if (ONLY.has('people')) {
      console.log("\n## Placing a new face among an owner's faces (brute force over every descriptor)");
      await benchPeople(work, values['people-faces'].split(',').map(Number), row);
    }
    if (ONLY.has('waveform')) {
      console.log('\n## Waveform and loudness: five minutes of stereo MP3');
      await benchWaveform(work, Number(values.runs), row);
    }
    if (ONLY.has('transcode')) {
      console.log('\n## Web rendition of a 30 s 1080p clip (transcodeVideo, default preset and CRF)');
      await benchTranscode(work, row);
    }
    if (ONLY.has('memory')) {
      console.log('\n## Memory of one `start` process (RSS, step threads included)');
      const types = values['memory-types']?.split(',');
      const env = Object.fromEntries(
        (values['memory-env']?.split(',') ?? []).map((kv) => {
          const at = kv.indexOf('=');
          if (at < 1) throw new Error(`--memory-env wants K=V pairs, got "${kv}"`);
          return [kv.slice(0, at), kv.slice(at + 1)];
        }),
      );
      await benchMemory(work, CORPUS, Number(values['memory-jobs']), Number(values['memory-window']), row, {
        types,
        env,
      });
    }
    if (ONLY.has('soak')) {
      console.log('\n## Soak: mixed corpus jobs through one `start` process');
      await benchSoak(work, CORPUS, Number(values['soak-jobs']), row);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function benchInline(work: string): Promise<void> {
  {
    const plainOut = path.join(work, 'plain');
    fs.mkdirSync(plainOut);
    const plainSec = await pool(JOBS, (i) => plainImageWork(images[i % images.length]!, plainOut));

    const dataDir = path.join(work, 'data');
    // The plain script computes statistics only; so does the orchestrator here (the detector has its own section).
    const runtime = await createRuntime(
      loadConfig({ DATA_DIR: dataDir, AI_PROVIDERS: 'vision=off' }),
      createLogger('warn'),
    );
    const inlineSec = await pool(JOBS, async (i) => {
      const file = images[i % images.length]!;
      const doc = await runtime.runner.run({ jobId: `bench-${i}`, file: { path: file } });
      if (doc.status !== 'completed') throw new Error(`${file}: ${doc.status} ${JSON.stringify(doc.error)}`);
    });
    await runtime.close();
    // What the SQLite file holds after the run (this section measures the SQLite backend).
    const db = new Database(path.join(dataDir, 'orchestrator.db'));
    db.pragma('wal_checkpoint(TRUNCATE)');
    const remaining = (db.prepare('SELECT count(*) AS n FROM checkpoints').get() as { n: number }).n;
    const writes = (db.prepare('SELECT count(*) AS n FROM writes').get() as { n: number }).n;
    const docBytes = (db.prepare('SELECT sum(length(doc)) AS n FROM jobs').get() as { n: number }).n;
    db.close();
    const dbBytes = fs.statSync(path.join(dataDir, 'orchestrator.db')).size;

    row('plain script (baseline)', `${(JOBS / plainSec).toFixed(1)} jobs/s`);
    row('inline orchestrator (process, checkpointed)', `${(JOBS / inlineSec).toFixed(1)} jobs/s`);
    row('ratio inline / plain', `${(plainSec / inlineSec).toFixed(2)}`);
    console.log('');
    row(`orchestrator.db after ${JOBS} jobs`, `${(dbBytes / 1024).toFixed(0)} KiB`);
    row('  per job', `${(dbBytes / JOBS / 1024).toFixed(2)} KiB`);
    row('  of which job documents, per job', `${(docBytes / JOBS / 1024).toFixed(2)} KiB`);
    row('  checkpoints / writes left (compacted)', `${remaining} / ${writes}`);
  }
}

await main();
