/**
 * Builds `deps.ai` from the configuration: for each capability the provider it names (AI_PROVIDERS, or `openai` for
 * all three as soon as OPENAI_API_KEY or OPENAI_BASE_URL is set), else the offline model, else nothing and a reason.
 * Heavy modules (LangChain, the detector) load on first use, so a process that never analyses an image never pays
 * for them.
 */
import os from 'node:os';
import type { Config } from '../config.js';
import type { Logger } from '../lib/log.js';
import type { ToolPaths } from '../lib/tools.js';
import { createExtractiveText } from './extractive.js';
import { DETAIL_SIDE } from './faces.js';
import { findPocketsphinx } from './pocketsphinx.js';
import type {
  AiModels,
  SpeechModel,
  SpeechResult,
  SummaryResult,
  TextModel,
  VisionModel,
  VisionResult,
} from './types.js';

export * from './types.js';

/**
 * `load` called on first use only, its promise shared by every caller after: how a heavy module (LangChain, the
 * detector, the recognizer) is imported and set up once, when a step first needs it.
 */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | null = null;
  return () => (loaded ??= load());
}

export function createAiModels(config: Config, tools: ToolPaths, log: Logger): AiModels {
  const ai = config.ai;
  const unavailable: AiModels['unavailable'] = {};
  const remote = once(() =>
    import('./openai/index.js').then((m) =>
      m.createOpenAiModels({
        apiKey: ai.openai.apiKey,
        baseURL: ai.openai.baseURL,
        visionModel: ai.openai.visionModel,
        chatModel: ai.openai.chatModel,
        transcribeModel: ai.openai.transcribeModel,
        timeoutMs: ai.timeoutMs,
        maxConcurrency: ai.maxConcurrency,
        contextChars: ai.contextChars,
        maxAudioChunkSec: ai.transcribeChunkSec,
        ffmpeg: tools.ffmpeg,
        log: log.child({ provider: 'openai' }),
      }),
    ),
  );

  let vision: VisionModel | null = null;
  if (ai.providers.vision === 'openai') {
    vision = {
      provider: 'openai',
      model: ai.openai.visionModel,
      analyze: async (input, opts): Promise<VisionResult> => (await remote()).vision.analyze(input, opts),
    };
  } else if (ai.providers.vision === 'local') {
    const load = once(() =>
      import('./human-vision.js').then((m) =>
        m.createHumanVision({ minScore: ai.visionMinScore, log: log.child({ provider: 'human' }) }),
      ),
    );
    vision = {
      provider: 'human',
      model: 'centernet-coco+blazeface+facemesh',
      detailSize: DETAIL_SIDE,
      analyze: async (input, opts): Promise<VisionResult> => (await load()).analyze(input, opts),
      describeFaces: async (picture, boxes, opts) => (await load()).describeFaces(picture, boxes, opts),
      warm: async () => (await load()).warm?.(),
    };
  } else unavailable.vision = 'image analysis by a model is off (AI_PROVIDERS vision=off)';

  let speech: SpeechModel | null = null;
  if (ai.providers.speech === 'openai') {
    speech = {
      provider: 'openai',
      model: ai.openai.transcribeModel,
      transcribe: async (input, opts): Promise<SpeechResult> => (await remote()).speech.transcribe(input, opts),
    };
  } else if (ai.providers.speech === 'local') {
    const binary = findPocketsphinx(ai.searchPath, ai.pocketsphinxPath);
    if (binary) {
      const load = once(() =>
        import('./pocketsphinx.js').then((m) =>
          m.createPocketsphinxSpeech({
            binary,
            ffmpeg: tools.ffmpeg,
            // Two recognizers at a time: an hour of speech takes about 15 minutes of CPU here.
            concurrency: Math.min(2, os.availableParallelism()),
            log: log.child({ provider: 'pocketsphinx' }),
          }),
        ),
      );
      speech = {
        provider: 'pocketsphinx',
        model: 'cmusphinx-en-us-ptm-5.2',
        transcribe: async (input, opts): Promise<SpeechResult> => (await load()).transcribe(input, opts),
      };
    } else {
      unavailable.speech = ai.pocketsphinxPath
        ? `POCKETSPHINX_PATH (${ai.pocketsphinxPath}) is not an executable with its US English model beside it`
        : 'no speech-to-text is available: install PocketSphinx (apt-get install pocketsphinx pocketsphinx-en-us) ' +
          'for rough offline transcripts, or set OPENAI_BASE_URL / OPENAI_API_KEY for a speech model';
    }
  } else unavailable.speech = 'speech-to-text is off (AI_PROVIDERS speech=off)';

  let text: TextModel | null = null;
  if (ai.providers.text === 'openai') {
    text = {
      provider: 'openai',
      model: ai.openai.chatModel,
      summarize: async (input, opts): Promise<SummaryResult> => (await remote()).text.summarize(input, opts),
    };
  } else if (ai.providers.text === 'local') text = createExtractiveText();
  else unavailable.text = 'summaries are off (AI_PROVIDERS text=off)';

  return { vision, speech, text, unavailable };
}
