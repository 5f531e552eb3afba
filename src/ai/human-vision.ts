/**
 * The offline vision model: @vladmandic/human on TensorFlow.js's WebAssembly backend, with COCO CenterNet for objects
 * and BlazeFace checked by FaceMesh for faces. The library, its models and the .wasm files are all read from
 * node_modules; nothing is fetched, so it works with no network at all.
 *
 * One detector per thread, loaded by the first analyze call: tfjs has one engine per thread and human keeps its
 * models in module variables, so a second instance in the same thread would share them anyway.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { format } from 'node:util';
import type { Tensor, io } from '@tensorflow/tfjs-core';
import type { Config, Human as HumanInstance } from '@vladmandic/human';
import sharp from 'sharp';
import type { Logger } from '../lib/log.js';
import { keepLabel, LABEL_CALIBRATION, type LabelCalibration } from './label-calibration.js';
import { cut, DETAIL_SIDE, findFaces, type Box, type Pixels } from './faces.js';
import {
  FACE_DESCRIPTOR_LENGTH,
  type CallOptions,
  type VisionInput,
  type VisionModel,
  type VisionResult,
} from './types.js';

/** The model files (`<name>.json` + weights) in the package's `models/` folder. */
const MODELS = ['centernet', 'blazeface', 'facemesh', 'faceres'] as const;
/** The contract says at most about 1024 px; holding to it here bounds the tensor whatever the caller sends. */
const MAX_SIDE = 1024;
const PROVIDER = 'human';
const MODEL = 'centernet-coco+blazeface+facemesh';

export interface HumanVisionOptions {
  /** Labels and faces scored below this (0..1) are left out. */
  minScore: number;
  maxLabels?: number;
  /** Per-class minimum scores over minScore; null reports the detector's raw scores (for fitting the table). */
  labelCalibration?: LabelCalibration | null;
  log?: Logger;
}

export interface HumanVision extends VisionModel {
  describeFaces: NonNullable<VisionModel['describeFaces']>;
  /** How long this thread's load took, in ms; null until the first analyze call has loaded it. */
  readonly loadMs: number | null;
  /** Tensors alive in this thread's tfjs engine (a leak shows as growth between calls); null before the load. */
  readonly numTensors: number | null;
}

/** The part of human's `tf` (typed `any` upstream) used here. */
interface HumanTf {
  tensor3d(values: Uint8Array, shape: [number, number, number], dtype: 'int32'): Tensor;
  memory(): { numTensors: number };
  getBackend(): string;
  io: Pick<typeof io, 'getModelArtifactsForJSON'> & {
    /** Its type says a router returns a handler; tfjs's own routers return null for URLs that are not theirs. */
    registerLoadRouter(router: (url: string | string[]) => io.IOHandler | null): void;
  };
}

interface Detector {
  human: HumanInstance;
  tf: HumanTf;
  loadMs: number;
  /** Detections run one at a time: human keeps per-call state (face boxes, the current input) in module variables. */
  queue: Promise<unknown>;
}

let detector: Promise<Detector> | undefined;
let loaded: Detector | undefined;

/**
 * Labels are COCO classes, one per class at its best score. `faces` are faces FaceMesh confirmed, in the whole
 * picture and in tiles of its sharper copy: BlazeFace sees faces turned towards the camera, so profiles and faces
 * looking down are missed (fewer faces, not false ones).
 */
export function createHumanVision(opts: HumanVisionOptions): HumanVision {
  const { minScore, maxLabels = 10, labelCalibration = LABEL_CALIBRATION, log } = opts;
  return {
    provider: PROVIDER,
    model: MODEL,
    detailSize: DETAIL_SIDE,
    get loadMs() {
      return loaded?.loadMs ?? null;
    },
    get numTensors() {
      return loaded ? loaded.tf.memory().numTensors : null;
    },
    async warm() {
      // The model, then one detection on a blank picture: the first detection also compiles the backend's kernels.
      const d = await getDetector(log);
      await serially(d, async () => {
        const tensor = d.tf.tensor3d(new Uint8Array(64 * 64 * 3), [64, 64, 3], 'int32');
        try {
          await withHumanLog(log, () => d.human.detect(tensor));
        } finally {
          tensor.dispose();
        }
      });
    },
    async analyze(input: VisionInput, { signal }: CallOptions): Promise<VisionResult> {
      signal.throwIfAborted();
      const d = await getDetector(log);
      signal.throwIfAborted();
      const started = performance.now();
      const { data, info } = await sharp(input.image)
        .resize(MAX_SIDE, MAX_SIDE, { fit: 'inside', withoutEnlargement: true })
        .toColourspace('srgb')
        .removeAlpha()
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`human vision: expected RGB pixels, got ${info.channels} channels`);
      const picture = { data, width: info.width, height: info.height };
      const detail = input.detail ?? picture;
      if (
        detail.data.length !== detail.width * detail.height * 3 ||
        Math.max(detail.width, detail.height) > DETAIL_SIDE
      )
        throw new Error(`human vision: the detail copy is not RGB pixels of at most ${DETAIL_SIDE} px`);
      const { result, faces } = await serially(d, async () => {
        // It may have waited behind other detections: no need to run one for a cancelled step.
        signal.throwIfAborted();
        const result = await detect(d, picture, true, log);
        const faces = await findFaces({
          whole: { faces: result.face, width: info.width, height: info.height },
          detail,
          detect: async (tile) => (await detect(d, tile, false, log)).face,
          minScore,
          signal,
        });
        return { result, faces };
      });
      const latencyMs = Math.round(performance.now() - started);
      // Detection cannot be interrupted; a step cancelled meanwhile still must not report success.
      signal.throwIfAborted();

      const best = new Map<string, number>();
      for (const o of result.object) best.set(o.label, Math.max(best.get(o.label) ?? 0, o.score));
      const faceScores = faces.map((f) => f.score);
      // A face FaceMesh confirmed is a person, even where CenterNet missed the body (close-ups, crowds).
      const personFaces = faceScores.filter((s) => s >= (labelCalibration?.faceAsPerson ?? 0));
      if (personFaces.length > 0) best.set('person', Math.max(best.get('person') ?? 0, ...personFaces));
      const labels = [...best]
        .map(([name, score]) => ({ name, score: Math.round(Math.min(1, Math.max(0, score)) * 1000) / 1000 }))
        .filter((l) => keepLabel(l, minScore, labelCalibration))
        .sort((a, b) => b.score - a.score || a.name.localeCompare(b.name))
        .slice(0, maxLabels);
      log?.debug(
        { objects: result.object.length, faces: faceScores.length, labels: labels.length, latencyMs },
        'human vision analyzed an image',
      );
      return {
        provider: PROVIDER,
        model: MODEL,
        caption: null,
        labels,
        tags: labels.map((l) => l.name),
        text: null,
        safety: null,
        faces,
        usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 1, latencyMs },
      };
    },
    async describeFaces(picture: Pixels, boxes: Box[], { signal }: CallOptions) {
      const d = await getDetector(log);
      const descriptors: (Float32Array | null)[] = [];
      for (const box of boxes) {
        signal.throwIfAborted();
        const crop = cut(picture, around(box, picture));
        const found = await serially(d, () => detect(d, crop, false, log, true));
        descriptors.push(descriptorOf(found.face, crop));
      }
      return descriptors;
    },
  };
}

/**
 * The face's surroundings: the box grown CROP_MARGIN times about its centre, within the picture. The description
 * model reads the face FaceMesh finds again in this crop. On the portrait corpus (bench/people-calibrate.ts), 1.3
 * kept different people further apart than 2, 3 or the whole picture; aligning rotation or averaging with the
 * mirrored face did not help.
 */
const CROP_MARGIN = 1.3;

function around(box: Box, picture: Pixels): Box {
  const side = Math.max(box.width * picture.width, box.height * picture.height) * CROP_MARGIN;
  const cx = (box.x + box.width / 2) * picture.width;
  const cy = (box.y + box.height / 2) * picture.height;
  const x = Math.max(0, Math.round(cx - side / 2));
  const y = Math.max(0, Math.round(cy - side / 2));
  const right = Math.min(picture.width, Math.round(cx + side / 2));
  const bottom = Math.min(picture.height, Math.round(cy + side / 2));
  return { x, y, width: Math.max(1, right - x), height: Math.max(1, bottom - y) };
}

/** The embedding of the face nearest the crop's centre, of unit length; null when there is none. */
function descriptorOf(faces: { box: [number, number, number, number]; embedding?: number[] }[], crop: Pixels) {
  let best: number[] | undefined;
  let bestDistance = Infinity;
  for (const f of faces) {
    if (f.embedding?.length !== FACE_DESCRIPTOR_LENGTH) continue;
    const [x, y, w, h] = f.box;
    const distance = Math.hypot(x + w / 2 - crop.width / 2, y + h / 2 - crop.height / 2);
    if (distance < bestDistance) [best, bestDistance] = [f.embedding, distance];
  }
  if (!best) return null;
  const norm = Math.hypot(...best);
  return norm > 0 ? Float32Array.from(best, (v) => v / norm) : null;
}

/** One detection on raw pixels; objects too, or faces only (the tiles); with descriptors, or not. */
async function detect(d: Detector, pixels: Pixels, objects: boolean, log: Logger | undefined, describe = false) {
  const tensor = d.tf.tensor3d(pixels.data, [pixels.height, pixels.width, 3], 'int32');
  let result;
  try {
    // Settings given to detect stay for the next call (human merges them into its config): say them every time.
    const settings = {
      object: { enabled: objects },
      face: { description: { enabled: describe } },
    };
    result = await withHumanLog(log, () => d.human.detect(tensor, settings));
  } finally {
    tensor.dispose();
  }
  if (result.error) throw new Error(`human vision: detection failed: ${result.error}`);
  return result;
}

/** This thread's detector; the first caller loads it and concurrent first callers share that one load. */
function getDetector(log: Logger | undefined): Promise<Detector> {
  // A failed load stays failed for the thread's life: the files are local, so a retry would fail the same way.
  detector ??= loadDetector(log).then((d) => (loaded = d));
  return detector;
}

async function loadDetector(log: Logger | undefined): Promise<Detector> {
  const started = performance.now();
  const require = createRequire(import.meta.url);
  // The package's exports map names its builds without "./", so Node refuses them: find its folder from the default
  // build (resolved, never loaded: it needs tfjs-node) and load the WebAssembly build beside it by path.
  let distDir: string;
  let wasmDir: string;
  try {
    distDir = path.dirname(require.resolve('@vladmandic/human'));
    wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  } catch (err) {
    throw new Error(`human vision: cannot find @vladmandic/human or @tensorflow/tfjs-backend-wasm: ${message(err)}`);
  }
  const humanFile = path.join(distDir, 'human.node-wasm.js');
  const modelsDir = path.resolve(distDir, '..', 'models');
  const needed = [
    humanFile,
    path.join(wasmDir, 'tfjs-backend-wasm.wasm'),
    path.join(wasmDir, 'tfjs-backend-wasm-simd.wasm'),
    ...MODELS.map((m) => path.join(modelsDir, `${m}.json`)),
  ];
  for (const file of needed) {
    try {
      await fs.access(file);
    } catch {
      throw new Error(`human vision: cannot load the detector: ${file} is missing`);
    }
  }

  const { Human } = require(humanFile) as { Human: typeof HumanInstance };
  const config = humanConfig(modelsDir, wasmDir);
  const human = new Human(config);
  const invalid = human.validate(config);
  if (invalid.length > 0) throw new Error(`human vision: bad configuration: ${JSON.stringify(invalid)}`);
  const tf = human.tf as HumanTf;
  const loadErrors: string[] = [];
  tf.io.registerLoadRouter(fileRouter(tf, loadErrors));
  await withHumanLog(log, () => human.load());
  if (tf.getBackend() !== 'wasm') throw new Error('human vision: the tfjs WebAssembly backend did not start');
  // models.loaded() lists a model whose weights failed too (human keeps the empty shell): ask its load stats.
  const stats = human.models.stats().modelStats;
  const missing = MODELS.filter((m) => !stats.some((s) => s.name === m && s.loaded));
  if (missing.length > 0) {
    const why = loadErrors.length > 0 ? loadErrors.join('; ') : 'see the debug log';
    throw new Error(`human vision: cannot load model ${missing.join(', ')} from ${modelsDir}: ${why}`);
  }
  const loadMs = Math.round(performance.now() - started);
  const bytes = stats.reduce((sum, s) => sum + s.sizeLoadedWeights, 0);
  log?.info({ loadMs, models: MODELS, weightBytes: bytes, backend: 'wasm' }, 'human vision loaded');
  return { human, tf, loadMs, queue: Promise.resolve() };
}

function humanConfig(modelsDir: string, wasmDir: string): Partial<Config> {
  // Built for video: skipFrames/skipTime/cacheSensitivity reuse the previous frame's results, wrong between photos.
  const fresh = { skipFrames: 0, skipTime: 0 };
  return {
    backend: 'wasm',
    // A folder prefix (trailing slash): the wasm files are read from disk, never from the CDN human defaults to.
    wasmPath: `${wasmDir}/`,
    wasmPlatformFetch: false,
    modelBasePath: `${pathToFileURL(modelsDir).href}/`,
    cacheModels: false,
    cacheSensitivity: 0,
    debug: false,
    async: false,
    warmup: 'none',
    filter: { enabled: false },
    gesture: { enabled: false },
    face: {
      enabled: true,
      detector: { modelPath: 'blazeface.json', maxDetected: 20, minConfidence: 0.2, rotation: false, ...fresh },
      // FaceMesh confirms BlazeFace's boxes: without it, bark and waterfalls count as faces.
      mesh: { enabled: true, modelPath: 'facemesh.json', keepInvalid: false },
      attention: { enabled: false },
      iris: { enabled: false },
      emotion: { enabled: false, ...fresh },
      // Loaded with the rest (human loads only what is enabled); each detection says whether it describes faces.
      description: { enabled: true, modelPath: 'faceres.json', ...fresh },
      antispoof: { enabled: false, ...fresh },
      liveness: { enabled: false, ...fresh },
    },
    body: { enabled: false },
    hand: { enabled: false },
    segmentation: { enabled: false },
    // A low floor here; the caller's minScore is applied to the merged labels.
    object: { enabled: true, modelPath: 'centernet.json', minConfidence: 0.05, maxDetected: 100, ...fresh },
  };
}

/**
 * Reads `file://` models from disk. Without tfjs-node, tfjs has no file handler and hands file URLs to fetch, which
 * Node's fetch does not support. Errors are kept for the load error: human only prints them.
 */
function fileRouter(tf: HumanTf, errors: string[]) {
  return (url: string | string[]): io.IOHandler | null => {
    if (typeof url !== 'string' || !url.startsWith('file://')) return null;
    return {
      load: async () => {
        try {
          const file = fileURLToPath(url);
          const json = JSON.parse(await fs.readFile(file, 'utf8')) as io.ModelJSON;
          return await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
            const parts: Buffer[] = [];
            for (const group of manifest)
              for (const p of group.paths) parts.push(await fs.readFile(path.join(path.dirname(file), p)));
            const all = Buffer.concat(parts);
            const weights = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
            return [manifest.flatMap((g) => g.weights), weights];
          });
        } catch (err) {
          errors.push(`${url}: ${message(err)}`);
          throw err;
        }
      },
    };
  };
}

function serially<T>(d: Detector, fn: () => Promise<T>): Promise<T> {
  const run = d.queue.then(fn, fn);
  d.queue = run.catch(() => undefined);
  return run;
}

/**
 * human prints through console.log, and stdout carries results here: while it runs, its lines go to the logger and
 * everything else passes through. Loads and detections never overlap (one load, then one detection at a time).
 */
async function withHumanLog<T>(log: Logger | undefined, fn: () => Promise<T>): Promise<T> {
  const original = console.log;
  const filter = (...args: unknown[]): void => {
    if (args[1] !== 'Human:') {
      original.apply(console, args);
      return;
    }
    // The first line says what happened; the rest is a stack trace of human's internals.
    const text = format(...args.slice(2)).split('\n', 1)[0] ?? '';
    if (/error|fail/i.test(text)) log?.warn({ human: text }, 'human vision library message');
    else log?.debug({ human: text }, 'human vision library message');
  };
  console.log = filter;
  try {
    return await fn();
  } finally {
    if (console.log === filter) console.log = original;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
