/** The names of the workflow's steps: the built-in ones, and the form a plugin step's name must have. */
export const STEP_NAMES = [
  'validate',
  'extractMetadata',
  'generateThumbnails',
  'analyzeImage',
  'posterFrame',
  'extractAudio',
  'transcribe',
  'renderPreview',
  'extractText',
  'summarize',
  'waveform',
  'transcodeVideo',
  'storyboard',
] as const;

/** What a plugin step may be called: a word (Mermaid node ids, task ids and metrics labels take it as it is). */
export const PLUGIN_STEP_NAME = /^[a-z][A-Za-z0-9_]{0,47}$/;
