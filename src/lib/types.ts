import type { Instructions } from './instructions.js';
/**
 * The shapes every layer shares: job input (the JOB_CREATED contract), step records, results and the job
 * document. Plain JSON only: these travel through checkpoints, queues and HTTP.
 */

export const FILE_TYPES = ['image', 'video', 'audio', 'pdf'] as const;
export type FileType = (typeof FILE_TYPES)[number];

export { PLUGIN_STEP_NAME, STEP_NAMES } from './step-names.js';
import { type STEP_NAMES } from './step-names.js';
export type StepName = (typeof STEP_NAMES)[number];

/**
 * A plugin step's name (PLUGINS, src/plugins): a string checked against the steps loaded at start-up, never a
 * producer's word. Built-in steps keep their closed union; the code that serves every step takes either.
 */
export type PluginStepName = string & { readonly __pluginStep: true };
export type AnyStepName = StepName | PluginStepName;

export const JOB_STATUSES = [
  'queued',
  'running',
  'awaiting_review',
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
  'rejected',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = [
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
  'rejected',
];
/** The statuses of a job that has ended without doing what was asked: the command line exits 2 for them. */
export const UNSUCCESSFUL_STATUSES: readonly JobStatus[] = ['failed', 'cancelled', 'rejected'];

/** Why a job waits for a person, and what they are shown (see the review in graph.ts). */
export interface ReviewRequest {
  reason: string;
  evidence: {
    labels?: { name: string; score: number }[];
    caption?: string | null;
    safety?: { flagged: boolean; categories: string[] } | null;
    excerpt?: string;
  };
}

export interface ReviewDecision {
  decision: 'approve' | 'reject';
  note?: string;
}

/** A job's review: asked for at `requestedAt`, decided at `decidedAt` (absent while it waits). */
export interface JobReview extends ReviewRequest {
  requestedAt: string;
  decision?: ReviewDecision['decision'];
  note?: string;
  decidedAt?: string;
}

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export const ERROR_CODES = [
  'UNSUPPORTED_TYPE',
  'CORRUPT_FILE',
  'ENCRYPTED',
  'TOO_LARGE',
  'EMPTY_FILE',
  'FILE_NOT_FOUND',
  'CHECKSUM_MISMATCH',
  'TIMEOUT',
  'RESOURCE_LIMIT',
  'PROVIDER_ERROR',
  'CANCELLED',
  'INVALID_INPUT',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
/** A code a plugin step fails with (`VIRUS_FOUND`): upper-case words, checked where the plugin's error is caught. */
export type PluginErrorCode = string & { readonly __pluginCode: true };
export type StepErrorCode = ErrorCode | PluginErrorCode;
export const PLUGIN_ERROR_CODE = /^[A-Z][A-Z0-9_]{1,47}$/;

/** The JOB_CREATED message data and the graph's input. */
/** What a producer asks of a job: the one input schema's type (lib/job-input.ts). */
import type { JobInput } from './job-input.js';

export type { JobInput } from './job-input.js';

/**
 * A re-run of a finished job (POST /jobs/:id/retry): the previous run's outcome. Steps that succeeded (or were
 * skipped for a reason of their own) keep their result; the rest run again, as task generation `generation`. Only
 * the service builds it (the retry route stores it with the job); no producer's message can carry it.
 */
export interface RetryOptions {
  generation: number;
  previous: { steps: StepRecords; results: Results; fileInfo: FileInfo | null; fileType: FileType | null };
}

/** What validate learns about the bytes; the job document's `file`. */
export interface FileInfo {
  name: string;
  size: number;
  mime: string;
  ext: string;
  sha256: string;
}

export interface JobError {
  code: StepErrorCode;
  message: string;
  step: AnyStepName | null;
}

export interface StepRecord {
  status: StepStatus;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  reason?: string;
  error?: JobError;
  /** While a long step runs (transcodeVideo): how far it is, 0-100, as the step itself measures it. */
  progress?: number;
}

export type StepRecords = Partial<Record<StepName, StepRecord>> & { [plugin: PluginStepName]: StepRecord };

export interface Thumbnail {
  width: number;
  height: number;
  format: string;
  bytes: number;
  name: string;
  url: string;
}

export interface ArtifactRef {
  name: string;
  url: string;
  bytes: number;
}

export interface StreamInfo {
  index: number;
  type: 'video' | 'audio' | 'subtitle' | 'data' | 'attachment';
  codec: string | null;
  language?: string | null;
  width?: number;
  height?: number;
  fps?: number | null;
  rotation?: number;
  sampleRate?: number;
  channels?: number;
  durationSec?: number | null;
  attachedPicture?: boolean;
  /** Video: ffprobe's pixel format (`yuv420p`); whether a browser can decode it depends on it. */
  pixelFormat?: string;
}

export interface Metadata {
  size: number;
  sha256: string;
  mime: string;
  uploader: { id: string } | null;
  width?: number;
  height?: number;
  format?: string;
  animated?: boolean;
  pages?: number;
  colorSpace?: string;
  hasAlpha?: boolean;
  orientation?: number | null;
  exif?: Record<string, string | number | boolean | null>;
  /** `timestamp`: the GPS receiver's date and time, UTC. */
  gps?: { latitude: number; longitude: number; altitude?: number | null; timestamp?: string | null } | null;
  /** Audio/video: the length the steps use; for a file cut short, what of it can be read (see declaredDurationSec). */
  durationSec?: number | null;
  /** Only for a file cut short: the length its header declares, longer than what it holds (a TRUNCATED warning). */
  declaredDurationSec?: number;
  bitRate?: number | null;
  container?: string;
  streams?: StreamInfo[];
  hasVideo?: boolean;
  hasAudio?: boolean;
  subtitleTracks?: number;
  pdf?: {
    version?: string | null;
    title?: string | null;
    author?: string | null;
    creator?: string | null;
    producer?: string | null;
    createdAt?: string | null;
    modifiedAt?: string | null;
    pageWidth?: number;
    pageHeight?: number;
    hasForm?: boolean;
  };
}

/** Tokens, model requests and time behind one AI result. Offline models report calls and time, zero tokens. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Model requests made (a long transcript summarized map-reduce makes several). */
  calls: number;
  /** Wall time spent waiting for the model, summed over calls. */
  latencyMs: number;
}

/** A face in a picture: its box from the top left corner, and the model's confidence (0..1). */
export interface Face {
  box: { x: number; y: number; width: number; height: number };
  score: number;
}

export interface Analysis {
  /** Who labelled the picture (`openai`, `human`), or `local` when only the statistics below were computed. */
  provider: string;
  model?: string;
  labels: { name: string; score: number }[];
  caption?: string | null;
  tags?: string[];
  /** Text visible in the picture, from the vision model or read by OCR (`textSource`). */
  text?: string | null;
  /** Where `text` comes from: the vision model, or OCR (tesseract.js, confident words only). */
  textSource?: 'vision' | 'ocr';
  /** For OCR text: the mean confidence (0-100) of its words. */
  textConfidence?: number;
  safety?: { flagged: boolean; categories: string[] } | null;
  /** Faces the vision model found, left to right: boxes in pixels of the upright (EXIF-oriented) original. */
  faces?: Face[];
  /** How many faces: `faces.length`, present with it. */
  faceCount?: number;
  usage?: Usage;
  dominantColor: string;
  palette: { color: string; share: number }[];
  brightness: number;
  sharpness: number;
  entropy: number;
  phash: string;
  placeholder?: string;
  description?: string;
}

export interface Results {
  /** A plugin step's result, under its name: the JSON value its `run` returned. */
  [plugin: string]: unknown;
  metadata?: Metadata;
  thumbnails?: Thumbnail[];
  placeholder?: { kind: 'thumbhash'; value: string };
  analysis?: Analysis;
  audio?: ArtifactRef & { format: string; durationSec: number | null };
  transcript?: Transcript;
  /**
   * `truncated`: the document held more than MAX_TEXT_CHARS; the text stops in page `pagesRead`. `title`: the PDF's
   * Title, else its XMP dc:title, else its first page's largest line.
   */
  text?: {
    pages: number;
    chars: number;
    excerpt: string;
    url: string;
    title?: string;
    truncated?: boolean;
    pagesRead?: number;
    /** Present when some pages had no text layer (scans). */
    ocr?: TextOcr;
  };
  summary?: Summary;
  /** Audio files and videos with sound: the waveform (audiowaveform JSON at `url`, a PNG at `pngUrl`). */
  waveform?: Waveform;
  loudness?: Loudness;
  /** The web rendition of a video (transcodeVideo): H.264/AAC MP4 with its index first. */
  video?: Rendition;
  /** Scrub previews of a video: a sprite of frames and the WebVTT that maps times to its tiles. */
  storyboard?: Storyboard;
  /** An image's 64-bit dHash (lib/perceptual-hash.ts), for near duplicates. */
  perceptualHash?: { kind: 'dhash'; value: string };
  /** Earlier finished jobs of the same owner with the same bytes (exact) or a picture that close (near). */
  duplicates?: Duplicate[];
}

/** Another job of the same owner: the same sha256 (`exact`, distance 0), or a dHash within the near threshold. */
export interface Duplicate {
  jobId: string;
  kind: 'exact' | 'near';
  /** Bits in which the perceptual hashes differ (0-64); 0 for an exact duplicate. */
  distance: number;
}

/** `waveform.json` in the BBC audiowaveform format (version 2, 8 bits, min/max pairs), with its header's figures. */
export interface Waveform extends ArtifactRef {
  pngUrl: string;
  channels: number;
  sampleRate: number;
  samplesPerPixel: number;
  /** Min/max pairs per channel. */
  length: number;
  /** The sound that was decoded, in seconds. */
  durationSec: number;
}

/** EBU R128 figures of the first audio stream (ffmpeg's ebur128), and how much of it is silence. */
export interface Loudness {
  /** Integrated loudness, LUFS; null when nothing rises above the absolute gate (-70 LUFS): digital silence. */
  integratedLufs: number | null;
  /** Loudness range, LU. */
  loudnessRangeLu: number | null;
  /** True peak (4x oversampled), dBTP; null for digital silence. */
  truePeakDbtp: number | null;
  /** Share of the duration (0 to 1) in silences as `silence` defines them. */
  silenceShare: number;
  silenceSec: number;
  silence: { method: 'silencedetect'; thresholdDb: number; minDurationSec: number };
}

/** The pages of a document read by OCR. */
export interface TextOcr {
  engine: 'tesseract.js';
  languages: string[];
  /** Pages (from 1) whose text was read from their pixels. */
  pages: number[];
  /** Mean word confidence over those pages, 0-100. */
  confidence: number;
  /** Pages without a text layer that were not read (over MAX_OCR_PAGES, or `ocr: false`), and why. */
  notRead?: number[];
  notReadReason?: string;
  /** Pages an earlier, stopped attempt had read and saved (not read again). */
  resumedPages?: number;
}

export interface Rendition extends ArtifactRef {
  format: 'mp4';
  /** `transcode`: encoded again; `remux`: the streams copied as they were, the metadata (GPS…) left behind. */
  mode: 'transcode' | 'remux';
  videoCodec: string;
  audioCodec: string | null;
  width: number;
  height: number;
  fps: number | null;
  durationSec: number | null;
  /** The x264 preset and CRF of a transcode. */
  preset?: string;
  crf?: number;
  /** An HLS playlist (fMP4 segments) of the same rendition, when the job asked for one. */
  hls?: { url: string; segments: number };
}

export interface Storyboard {
  /** storyboard.vtt: one cue per tile, `storyboard.jpg#xywh=x,y,w,h`. */
  url: string;
  spriteUrl: string;
  tiles: number;
  columns: number;
  rows: number;
  tileWidth: number;
  tileHeight: number;
  intervalSec: number;
}

export interface Transcript {
  /** `subtitles`, or the speech model's provider (`openai`, `pocketsphinx`). */
  provider: string;
  model?: string;
  /** Where the words came from: `subtitle track 2 (eng)`, `speech`. */
  source: string;
  /** An excerpt; the whole text is the artifact at `url`. */
  text: string;
  truncated: boolean;
  chars: number;
  url: string;
  srtUrl?: string;
  vttUrl?: string;
  language?: string | null;
  durationSec?: number | null;
  segments?: number;
  chunks?: number;
  /** `rough` for small offline recognizers. */
  quality?: 'rough' | 'standard';
  usage?: Usage;
}

export interface Summary {
  provider: string;
  model?: string;
  text: string;
  source: string;
  title?: string | null;
  keyPoints?: string[];
  language?: string | null;
  /** Chapters of a timed transcript, with their start in seconds. */
  chapters?: { start: number; title: string }[];
  /** Pieces the text was summarized in (map-reduce); 1 when it fit the model at once. */
  chunks?: number;
  usage?: Usage;
}

/** What a job that completed should tell: its file is damaged but usable (see warningsOf). */
export const WARNING_CODES = ['TRUNCATED'] as const;
export interface JobWarning {
  code: (typeof WARNING_CODES)[number];
  message: string;
}

/** What finalize hands to the job store. */
export interface FinishedJob {
  jobId: string;
  status: JobStatus;
  fileType: FileType | null;
  file: JobInput['file'];
  fileInfo: FileInfo | null;
  user: JobInput['user'];
  steps: StepRecords;
  results: Results;
  error: JobError | null;
  /** DUPLICATES=skip: the earlier job with the same bytes whose results this one shares. */
  duplicateOf?: string;
}

export interface JobDocument {
  id: string;
  status: JobStatus;
  fileType: FileType | null;
  file: Partial<FileInfo> & { name: string };
  user: { id: string } | null;
  priority: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: StepRecords;
  results: Results;
  error: JobError | null;
  /** The file is damaged but usable (cut short, say): the job then ends completed_with_errors. Absent when none. */
  warnings?: JobWarning[];
  /** What the job's AI steps spent, summed over their results; absent when no model was called. */
  usage?: Usage;
  /** Delivery of the completion webhook, when the job has a notifyUrl. */
  webhook?: WebhookDelivery;
  /** What the producer asked for this job (lib/instructions.ts), when it asked anything. */
  instructions?: Instructions;
  profile?: string;
  /** Present once the job has waited for a person's review: why, the evidence, and the decision when made. */
  review?: JobReview;
  /** In GET /jobs/:id only: every file the job produced (thumbnails, transcripts, text, audio, ...). */
  artifacts?: ArtifactRef[];
  /** In API answers only: whether POST /jobs/:id/retry would be accepted, and why not (see retryRefusal). */
  retry?: { allowed: boolean; reason: string | null };
  /** DUPLICATES=skip: the earlier job with the same bytes whose results this one shares (no step ran). */
  duplicateOf?: string;
}

export interface WebhookDelivery {
  url: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
}
