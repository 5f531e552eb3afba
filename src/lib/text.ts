/** Text from outside (model answers, subtitle tracks) made safe to store, print and show. */

/** Control characters (but newlines) and bidirectional overrides: a terminal or a page must show text as text. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_CHARS = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

export function safeText(text: string): string {
  return text.replace(UNSAFE_CHARS, '');
}
