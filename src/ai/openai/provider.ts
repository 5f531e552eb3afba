/**
 * The one place where calls to an OpenAI-compatible server are made safe: the retry policy (`callProvider` with
 * `providerFailure`), structured chat calls checked against their schema, keys kept out of messages, and the bounds
 * applied to whatever the model answers. LangChain's and the SDK's own retries are off, so a transient failure is
 * retried here a bounded number of times and then handed to the queue as a retryable MediaError.
 */
import { isAIMessage, type BaseMessage } from '@langchain/core/messages';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { z } from 'zod';
import { MediaError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { safeText } from '../../lib/text.js';
import type { Usage } from '../../lib/types.js';

export const PROVIDER = 'openai';
/**
 * Transient failures (429, 5xx, network) are retried here and only here: this layer knows Retry-After. When they are
 * used up the failure is final (not retryable), so the queue's attempts do not multiply the requests.
 */
const TRANSIENT_RETRIES = 3;
/** An answer that does not match the schema is asked for again once. */
const SCHEMA_RETRIES = 1;
/** Longest wait for a Retry-After; a server asking for longer fails the step with its answer. */
const MAX_RETRY_WAIT_MS = 60_000;
export const BACKOFF_MS = [1_000, 4_000, 15_000];

// ---- structured chat calls ---------------------------------------------------------------------------------------

export type StructuredRunnable<T> = {
  invoke(input: BaseMessage[], config: object): Promise<{ raw: BaseMessage; parsed: T }>;
};

/** Thrown when the model's answer is not the JSON the schema asks for. */
class SchemaMismatch extends Error {
  override name = 'SchemaMismatch';
}

export async function structuredCall<S extends z.ZodType<Record<string, unknown>>>(
  runnable: StructuredRunnable<z.infer<S>>,
  schema: S,
  messages: BaseMessage[],
  runName: string,
  ctx: ProviderContext,
  signal: AbortSignal,
  usage: Usage,
): Promise<z.infer<S>> {
  return callProvider(ctx, signal, usage, async (attemptSignal) => {
    const { raw, parsed } = await runnable.invoke(messages, {
      signal: attemptSignal,
      runName,
      metadata: { provider: PROVIDER },
    });
    const meta = isAIMessage(raw) ? raw.usage_metadata : undefined;
    if (meta) addTokens(usage, meta.input_tokens, meta.output_tokens, meta.total_tokens);
    const refusal = raw.additional_kwargs.refusal;
    if (typeof refusal === 'string' && refusal) {
      throw new MediaError('PROVIDER_ERROR', `${whereOf(ctx)} refused: ${redact(refusal, ctx.secret).slice(0, 300)}`);
    }
    // Checked again here: with tool calling, LangChain reports a parse failure as `parsed: null`.
    const checked = schema.safeParse(parsed);
    if (!checked.success) throw new SchemaMismatch(z.prettifyError(checked.error).slice(0, 300));
    return checked.data;
  });
}

// ---- the one place where provider failures are decided -----------------------------------------------------------

export interface ProviderContext {
  host: string;
  model: string;
  timeoutMs: number;
  /** Never to appear in a message or a log line. */
  secret: string | null;
  log?: Logger | undefined;
  retryDelaysMs: readonly number[];
}

interface ProviderFailure {
  kind: 'transient' | 'schema' | 'fatal';
  error: MediaError;
  /** What the server asked for (Retry-After), in ms. */
  retryAfterMs: number | null;
}

/**
 * Maps any error of a provider call to a MediaError, and says whether it is worth another try inside the call:
 * 429, 408/409, 5xx, timeouts and network failures are transient (retryable); other HTTP statuses are the request's
 * fault (not retryable) and name the server, the model and the server's own message; an answer that does not
 * match the schema is asked for again once, then fails without retry.
 */
function providerFailure(err: unknown, ctx: ProviderContext): ProviderFailure {
  const where = whereOf(ctx);
  const say = (text: string): string => redact(text, ctx.secret);
  if (err instanceof MediaError) return { kind: 'fatal', error: err, retryAfterMs: null };

  if (isSchemaFailure(err)) {
    const detail = err instanceof Error ? `: ${say(err.message).slice(0, 300)}` : '';
    return {
      kind: 'schema',
      error: new MediaError('PROVIDER_ERROR', `the model's answer did not match the schema (${where})${detail}`, {
        cause: err,
      }),
      retryAfterMs: null,
    };
  }

  const status = statusOf(err);
  if (status !== null) {
    const message = say(providerMessage(err)).slice(0, 500);
    const transient = status === 408 || status === 409 || status === 429 || status >= 500;
    const error = new MediaError(
      'PROVIDER_ERROR',
      transient
        ? `${where} failed with HTTP ${status}: ${message}`
        : `${where} rejected the request with HTTP ${status}: ${message}`,
      { retryable: transient, cause: err },
    );
    return { kind: transient ? 'transient' : 'fatal', error, retryAfterMs: transient ? retryAfterMs(err) : null };
  }

  const name = err instanceof Error ? err.name : '';
  if (err instanceof APIConnectionTimeoutError || name === 'TimeoutError') {
    const error = new MediaError('PROVIDER_ERROR', `${where} did not answer within ${ctx.timeoutMs} ms`, {
      retryable: true,
      cause: err,
    });
    return { kind: 'transient', error, retryAfterMs: null };
  }
  if (
    err instanceof APIConnectionError ||
    err instanceof APIUserAbortError ||
    name === 'AbortError' ||
    isNetworkError(err)
  ) {
    const reason = err instanceof Error ? say(err.message) : 'connection failed';
    const error = new MediaError('PROVIDER_ERROR', `${where} could not be reached: ${reason}`, {
      retryable: true,
      cause: err,
    });
    return { kind: 'transient', error, retryAfterMs: null };
  }
  const reason = err instanceof Error ? say(err.message) : say(String(err));
  return {
    kind: 'fatal',
    error: new MediaError('PROVIDER_ERROR', `${where} failed: ${reason.slice(0, 500)}`, { cause: err }),
    retryAfterMs: null,
  };
}

/** Runs one provider request with the retry policy; every attempt is counted in `usage` (calls, latency). */
export async function callProvider<T>(
  ctx: ProviderContext,
  signal: AbortSignal,
  usage: Usage,
  attempt: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  let transientRetries = 0;
  let schemaRetries = 0;
  for (;;) {
    signal.throwIfAborted();
    const started = performance.now();
    let failure: ProviderFailure;
    try {
      // A signal per attempt: the SDK leaves an abort listener on the signal of every request it makes.
      return await attempt(AbortSignal.any([signal]));
    } catch (err) {
      // A cancelled step is not a provider failure: reject with the signal's own reason.
      signal.throwIfAborted();
      failure = providerFailure(err, ctx);
    } finally {
      usage.calls += 1;
      usage.latencyMs += Math.round(performance.now() - started);
    }
    if (failure.kind === 'schema' && schemaRetries < SCHEMA_RETRIES) {
      schemaRetries++;
      ctx.log?.warn(
        { provider: PROVIDER, host: ctx.host, model: ctx.model },
        'model answer did not match; asking again',
      );
      continue;
    }
    if (failure.kind !== 'transient') throw failure.error;
    const delays = ctx.retryDelaysMs;
    const waitMs = failure.retryAfterMs ?? delays[transientRetries] ?? delays.at(-1) ?? 1_000;
    if (transientRetries >= Math.min(TRANSIENT_RETRIES, delays.length) || waitMs > MAX_RETRY_WAIT_MS) {
      const why =
        waitMs > MAX_RETRY_WAIT_MS
          ? `it asked to wait ${Math.round(waitMs / 1000)} s`
          : `after ${transientRetries + 1} tries`;
      throw new MediaError('PROVIDER_ERROR', `${failure.error.message} (${why})`, { cause: failure.error });
    }
    transientRetries++;
    ctx.log?.warn(
      {
        provider: PROVIDER,
        host: ctx.host,
        model: ctx.model,
        waitMs,
        retry: transientRetries,
        err: failure.error.message,
      },
      'provider call failed; retrying',
    );
    await sleep(waitMs, signal);
  }
}

function whereOf(ctx: ProviderContext): string {
  return `the provider at ${ctx.host} (model "${ctx.model}")`;
}

function isSchemaFailure(err: unknown): boolean {
  if (err instanceof SchemaMismatch || err instanceof SyntaxError || err instanceof z.core.$ZodError) return true;
  if (!(err instanceof Error)) return false;
  // The SDK parses json_schema answers itself (SyntaxError, ZodError); LangChain's parsers throw
  // OutputParserException; an answer cut off by the token limit cannot be parsed either.
  const names = ['ZodError', '$ZodError', 'OutputParserException', 'LengthFinishReasonError'];
  return names.includes(err.name) || names.includes(err.constructor.name);
}

function statusOf(err: unknown): number | null {
  if (err instanceof APIError && typeof err.status === 'number') return err.status;
  if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number') return err.status;
  return null;
}

function providerMessage(err: unknown): string {
  if (err instanceof APIError) {
    const body = err.error as { message?: unknown } | undefined;
    if (body && typeof body.message === 'string' && body.message) return body.message;
  }
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^\d{3}\s+/, '') || 'no message';
}

function retryAfterMs(err: unknown): number | null {
  const headers = typeof err === 'object' && err !== null && 'headers' in err ? err.headers : undefined;
  if (!(headers instanceof Headers)) return null;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get('retry-after')?.trim();
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

function isNetworkError(err: unknown): boolean {
  const codes = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET'];
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    if (typeof e !== 'object') return false;
    if ('code' in e && typeof e.code === 'string' && codes.includes(e.code)) return true;
    if (e instanceof TypeError && e.message === 'fetch failed') return true;
    e = 'cause' in e ? e.cause : undefined;
  }
  return false;
}

/** Keys never leave the process: not in messages, not in logs. */
export function redact(text: string, secret: string | null): string {
  let out = text;
  if (secret && secret.length >= 6) out = out.split(secret).join('[redacted]');
  return out.replace(/\b(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_*-]{8,}/g, '$1…').replace(/Bearer\s+\S+/gi, 'Bearer …');
}

export function hostOf(baseURL: string | undefined): string {
  try {
    return new URL(baseURL ?? 'https://api.openai.com/v1').host;
  } catch {
    return 'an invalid base URL';
  }
}

/** Waits, unless the signal aborts first (then rejects with its reason). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

// ---- bounding what the model says ----------------------------------------------------------------------------------

/** A token count as the server reported it, or 0: missing, NaN and negative counts must not poison the totals. */
function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0;
}

export function addTokens(usage: Usage, input: unknown, output: unknown, total: unknown): void {
  const i = tokenCount(input);
  const o = tokenCount(output);
  usage.inputTokens += i;
  usage.outputTokens += o;
  usage.totalTokens += Math.max(tokenCount(total), i + o);
}

export function clean(text: unknown, max: number): string {
  if (typeof text !== 'string') return '';
  const flat = safeText(text).replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1).trimEnd()}…` : flat;
}

export function cleanList(items: readonly unknown[], maxItems: number, maxChars: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const item of items) {
    const text = clean(item, maxChars);
    const key = text.toLowerCase();
    if (!text || seen.has(key)) continue;
    seen.add(key);
    out.push(text);
    if (out.length >= maxItems) break;
  }
  return out;
}

const LANGUAGES: Record<string, string> = {
  english: 'en',
  german: 'de',
  french: 'fr',
  spanish: 'es',
  italian: 'it',
  portuguese: 'pt',
  dutch: 'nl',
  russian: 'ru',
  ukrainian: 'uk',
  polish: 'pl',
  czech: 'cs',
  swedish: 'sv',
  norwegian: 'no',
  danish: 'da',
  finnish: 'fi',
  greek: 'el',
  turkish: 'tr',
  arabic: 'ar',
  hebrew: 'he',
  hindi: 'hi',
  chinese: 'zh',
  japanese: 'ja',
  korean: 'ko',
  vietnamese: 'vi',
  indonesian: 'id',
  persian: 'fa',
};

/** ISO 639-1 where the answer allows it (Whisper's verbose_json names languages in English: "english"). */
export function languageCode(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const v = value.trim().toLowerCase();
  if (/^[a-z]{2}$/.test(v)) return v;
  if (/^[a-z]{2}[-_][a-z0-9]{2,4}$/.test(v)) return v.slice(0, 2);
  return LANGUAGES[v] ?? null;
}
