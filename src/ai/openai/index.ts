/**
 * Vision, speech and text models behind any OpenAI-compatible server (OpenAI, Ollama, vLLM, LocalAI…): chat through
 * LangChain's ChatOpenAI with structured output (vision.ts, summary.ts), transcription through the openai SDK
 * (speech.ts), one retry policy for all of them (provider.ts). LangChain callbacks stay on, so LangSmith tracing works
 * when its environment variables are set.
 */
import { ChatOpenAI } from '@langchain/openai';
import OpenAI from 'openai';
import type { Logger } from '../../lib/log.js';
import type { SpeechModel, TextModel, VisionModel } from '../types.js';
import { BACKOFF_MS, hostOf, type ProviderContext } from './provider.js';
import { createSpeechModel, DEFAULT_AUDIO_CHUNK_SEC } from './speech.js';
import { createTextModel, DEFAULT_CONTEXT_CHARS } from './summary.js';
import { createVisionModel } from './vision.js';

export interface OpenAiOptions {
  /** Optional for servers that need none (Ollama): a placeholder is sent instead. */
  apiKey?: string;
  /** Ends with /v1; OpenAI's own API when absent. */
  baseURL?: string;
  visionModel: string;
  chatModel: string;
  transcribeModel: string;
  /** Per HTTP request. */
  timeoutMs: number;
  /** Requests in flight at once for one input (audio chunks, map calls). */
  maxConcurrency: number;
  ffmpeg: string;
  log?: Logger;
  /** Longest text sent in one call; longer texts are summarized map-reduce. */
  contextChars?: number;
  /** Longest audio sent in one call; longer recordings are cut. */
  maxAudioChunkSec?: number;
  /** Waits before the transient retries when the server names none (Retry-After); 1, 4 and 15 s by default. */
  retryDelaysMs?: readonly number[];
}

export function createOpenAiModels(opts: OpenAiOptions): { vision: VisionModel; speech: SpeechModel; text: TextModel } {
  if (!opts.apiKey && !opts.baseURL) throw new Error('the OpenAI provider needs an API key or a base URL');
  // OpenAI-compatible servers without authentication (Ollama) still get a bearer token: the clients require one.
  const apiKey = opts.apiKey ?? 'no-key';
  const host = hostOf(opts.baseURL);
  const maxConcurrency = Math.max(1, Math.floor(opts.maxConcurrency));
  const chat = (model: string): ChatOpenAI =>
    new ChatOpenAI({
      model,
      apiKey,
      configuration: opts.baseURL ? { baseURL: opts.baseURL } : {},
      timeout: opts.timeoutMs,
      maxRetries: 0,
      maxConcurrency,
    });
  const context = (model: string): ProviderContext => ({
    host,
    model,
    timeoutMs: opts.timeoutMs,
    secret: opts.apiKey ?? null,
    log: opts.log,
    retryDelaysMs: opts.retryDelaysMs ?? BACKOFF_MS,
  });
  const client = new OpenAI({
    apiKey,
    ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
    timeout: opts.timeoutMs,
    maxRetries: 0,
  });
  return {
    vision: createVisionModel(chat(opts.visionModel), context(opts.visionModel)),
    speech: createSpeechModel({
      client,
      ctx: context(opts.transcribeModel),
      ffmpeg: opts.ffmpeg,
      maxAudioChunkSec: Math.max(10, opts.maxAudioChunkSec ?? DEFAULT_AUDIO_CHUNK_SEC),
      maxConcurrency,
    }),
    text: createTextModel(chat(opts.chatModel), {
      ctx: context(opts.chatModel),
      contextChars: Math.max(1_000, opts.contextChars ?? DEFAULT_CONTEXT_CHARS),
      maxConcurrency,
    }),
  };
}
