/**
 * Offline language detection, small on purpose: the script a text is written in names its language where one
 * language owns the script (Arabic, Greek, Hebrew…); for Latin text, the share of each language's commonest words
 * decides. The same lists are the stop words the ranking ignores, so a French text is not ranked with English ones.
 */

const STOP_WORDS: Record<string, string> = {
  en:
    'the of and to a in is it that for on was with as are be this by at or from an not but have has had which were ' +
    'they their we our you he she his her its can will would there been also more one all if than so these such ' +
    'into when what who may only other some then them about how i me my do does did no up out over most very',
  fr:
    'le la les de des du un une et est que qui dans pour pas sur au aux par ce cette ces il elle ils elles nous vous ' +
    'je ne se sa son ses leur leurs mais ou où donc car avec sont été être avoir fait plus comme tout tous très aussi ' +
    'on y en lui même entre sans sous dont ont peut été était',
  de:
    'der die das und ist nicht ein eine einen dem den des zu mit sich auf für von im in als auch es an er sie wir ' +
    'ich du wird werden wurde sind war hat haben aus bei nach oder wie dass aber nur noch so um zum zur über kann ' +
    'diese dieser dieses man sein seine vor durch',
  es:
    'el la los las de del y en que es un una por con para no se su sus al lo como más pero o este esta estos sin ' +
    'sobre entre cuando también ya muy hay fue ser son está han ha porque desde todo todos nos yo él ella ellos le',
  it:
    'il lo la i gli le di del della dei delle e è un una che per non con su al alla dal nel nella si come più ma o ' +
    'anche sono era essere ha hanno questo questa questi tra fra se ci mi ne lui lei loro tutto molto già quando',
  pt:
    'o a os as de do da dos das e é um uma que em no na nos nas por para com não se seu sua mais mas ou como foi ' +
    'ser são está tem ao aos à pelo pela também já muito quando isso este esta ele ela eles entre sem sobre',
  nl:
    'de het een en van in is dat op te zijn voor met die niet aan er als ook door maar om bij nog wordt werd uit ' +
    'dan of naar hij zij wij ik je we ze dit deze was heeft hebben worden kan tot over meer geen veel',
};

const STOPS: Record<string, Set<string>> = Object.fromEntries(
  Object.entries(STOP_WORDS).map(([lang, words]) => [lang, new Set(words.split(/\s+/))]),
);

/** Scripts that belong to one language (or to one language far more than any other). */
const SCRIPTS: [RegExp, string][] = [
  [/\p{Script=Arabic}/u, 'ar'],
  [/\p{Script=Hebrew}/u, 'he'],
  [/\p{Script=Greek}/u, 'el'],
  [/\p{Script=Cyrillic}/u, 'ru'],
  [/[\p{Script=Hiragana}\p{Script=Katakana}]/u, 'ja'],
  [/\p{Script=Hangul}/u, 'ko'],
  [/\p{Script=Han}/u, 'zh'],
  [/\p{Script=Thai}/u, 'th'],
  [/\p{Script=Devanagari}/u, 'hi'],
];

export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{M}]+(?:['’][\p{L}]+)?/gu) ?? [];
}

/** ISO 639-1 code of the text's language, or null when the text is too short or too mixed to tell. */
export function detectLanguage(text: string): string | null {
  const sample = text.slice(0, 20_000);
  const letters = sample.match(/\p{L}/gu) ?? [];
  if (letters.length < 20) return null;
  const latin = letters.filter((c) => /\p{Script=Latin}/u.test(c)).length;
  if (latin / letters.length < 0.5) {
    const counts = SCRIPTS.map(([re, lang]) => [lang, letters.filter((c) => re.test(c)).length] as const);
    // Japanese mixes kana with Han: any kana at all says Japanese.
    const kana = counts.find(([lang]) => lang === 'ja')?.[1] ?? 0;
    if (kana > letters.length * 0.05) return 'ja';
    const best = counts.sort((a, b) => b[1] - a[1])[0];
    return best && best[1] > letters.length * 0.3 ? best[0] : null;
  }
  const tokens = words(sample).map((w) => w.replace(/['’].*$/, ''));
  if (tokens.length < 5) return null;
  const scores = Object.entries(STOPS)
    .map(([lang, stops]) => [lang, tokens.filter((w) => stops.has(w)).length / tokens.length] as const)
    .sort((a, b) => b[1] - a[1]);
  const [first, second] = scores;
  if (!first || first[1] < 0.08) return null;
  // Close languages share words ("de", "a", "en"): the winner must lead clearly.
  return first[1] >= (second?.[1] ?? 0) * 1.2 ? first[0] : null;
}

/** The stop words of a language this module knows (English when it does not know it). */
export function stopWords(language: string | null): Set<string> {
  return STOPS[language ?? 'en'] ?? STOPS.en ?? new Set();
}
