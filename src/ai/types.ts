/**
 * The seam between the AI steps and the models behind them (`deps.ai`). Nodes see only these interfaces; each
 * implementation (a provider through LangChain, an offline model) lives in its own file beside this one, so a new
 * provider is one file. Every call takes the step's AbortSignal (cancellation and step timeouts abort it) and every
 * result names the provider and model that produced it.
 */

import type { AiCapability } from '../config.js';
import type { Face, Usage } from '../lib/types.js';

export type { AiCapability };

export interface AiResultBase {
  /** `openai` (any OpenAI-compatible server), `human` (the offline detector), `pocketsphinx`, `local-extractive`… */
  provider: string;
  model: string;
  usage: Usage;
}

export interface CallOptions {
  signal: AbortSignal;
}

// ---- vision ------------------------------------------------------------------------------------------------------

export interface VisionInput {
  /** An upright (EXIF-oriented) JPEG or PNG of the image, at most about 1024 px on its longer side. */
  image: Buffer;
  mime: 'image/jpeg' | 'image/png';
  width: number;
  height: number;
  /**
   * The same picture sharper, as raw RGB pixels (3 bytes a pixel), for a model that asks for it with `detailSize`:
   * the offline detector looks for small faces in it.
   */
  detail?: { data: Buffer; width: number; height: number };
}

/** Raw RGB pixels, 3 bytes a pixel, row after row. */
export interface FacePixels {
  data: Buffer;
  width: number;
  height: number;
}

/** Numbers in a face descriptor (the offline description model's embedding). */
export const FACE_DESCRIPTOR_LENGTH = 1024;

/** A face in the picture: its box in fractions (0..1) of the picture's width and height, from its top left. */
export type VisionFace = Face;

export interface VisionResult extends AiResultBase {
  /** One sentence about the picture; null where the model gives none (the offline detector). */
  caption: string | null;
  /** Objects or concepts, best first, scores 0..1; below the configured threshold they are left out. */
  labels: { name: string; score: number }[];
  tags: string[];
  /** Text visible in the image (an excerpt), or null. */
  text: string | null;
  /** Content flags from the model (`nsfw`, `violence`, …), or null where the model says nothing about safety. */
  safety: { flagged: boolean; categories: string[] } | null;
  /** People's faces found, where the model looks for them; left to right. */
  faces?: VisionFace[];
}

export interface VisionModel {
  readonly provider: string;
  readonly model: string;
  /** Longer side, in px, of the `detail` copy this model wants beside the picture; none when absent. */
  readonly detailSize?: number;
  analyze(input: VisionInput, opts: CallOptions): Promise<VisionResult>;
  /**
   * A descriptor per face (FACE_DESCRIPTOR_LENGTH numbers; close descriptors, close faces) for faces `analyze` found,
   * their boxes in fractions of `picture` (raw RGB, 3 bytes a pixel); null where the model sees no face in a box.
   * Only models that describe faces have it.
   */
  describeFaces?(picture: FacePixels, boxes: VisionFace['box'][], opts: CallOptions): Promise<(Float32Array | null)[]>;
  /** Loads what the first call would load (a model, a library), so that call does not wait for it. */
  warm?(): Promise<void>;
}

// ---- speech ------------------------------------------------------------------------------------------------------

export interface TranscriptSegment {
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
  text: string;
}

export interface SpeechInput {
  /** A mono audio file (the extractAudio artifact: 16 kHz MP3), readable by ffmpeg. */
  audioPath: string;
  durationSec: number | null;
  /** ISO 639-1 hint, when known. */
  language?: string | null;
  /** The ffmpeg demuxer the file was validated as: open it with that one (`-f`), never one ffmpeg guesses. */
  inputFormat?: string | null;
}

export interface SpeechResult extends AiResultBase {
  text: string;
  language: string | null;
  durationSec: number | null;
  segments: TranscriptSegment[];
  /** Pieces the audio was cut into for the model. */
  chunks: number;
  /** `rough` for small offline recognizers, so that nobody mistakes their output for Whisper's. */
  quality: 'rough' | 'standard';
}

export interface SpeechModel {
  readonly provider: string;
  readonly model: string;
  transcribe(input: SpeechInput, opts: CallOptions): Promise<SpeechResult>;
}

// ---- text --------------------------------------------------------------------------------------------------------

export interface TextInput {
  text: string;
  source: 'transcript' | 'text';
  /** The document's own title where it states one (a PDF's Title, XMP dc:title, its first page's largest line). */
  title?: string;
  /** Timed transcript segments, for chapters. */
  segments?: TranscriptSegment[];
  /** What the job asked for (its instructions): how long, and in which language (a BCP 47 tag). */
  length?: 'short' | 'medium' | 'long';
  language?: string;
}

export interface SummaryResult extends AiResultBase {
  title: string | null;
  summary: string;
  keyPoints: string[];
  language: string | null;
  /** For timed transcripts: chapters with their start in seconds. */
  chapters: { start: number; title: string }[];
  /** Pieces the text was cut into (map-reduce); 1 when it fit the model at once. */
  chunks: number;
}

export interface TextModel {
  readonly provider: string;
  readonly model: string;
  summarize(input: TextInput, opts: CallOptions): Promise<SummaryResult>;
  /** Loads what the first call would load (a model, a library), so that call does not wait for it. */
  warm?(): Promise<void>;
}

// ---- the seam ----------------------------------------------------------------------------------------------------

export interface AiModels {
  /** Null where nothing can do the work honestly; `unavailable` then says why and how to enable it. */
  vision: VisionModel | null;
  speech: SpeechModel | null;
  text: TextModel | null;
  unavailable: Partial<Record<AiCapability, string>>;
}

export function emptyUsage(): Usage {
  return { inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 0, latencyMs: 0 };
}
