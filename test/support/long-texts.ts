/**
 * Long transcripts for search load: English-like words made of common syllables, drawn with a Zipf-like skew (a few
 * words everywhere, most rare), so that a three-letter prefix such as `con*` stands for a hundred words of the index
 * and occurs thousands of times in every text. Deterministic: the same seed gives the same texts.
 */
import type { JobStore } from '../../src/store/index.js';

const SYLLABLES = [
  ...['con', 'pro', 'com', 'dis', 'int', 'res', 'pre', 'per', 'tra', 'sta', 'man', 'ver', 'ter', 'ing', 'ment'],
  ...['tion', 'al', 'er', 'ly', 'ous', 'an', 'ed', 'es', 'ist', 'ive', 'ab', 'or', 'un', 'im', 'ex'],
];

/** Eight prefixes every long text has: the broadest query the language allows. */
export const BROAD_QUERY = 'con* pro* com* dis* int* res* pre* per*';

/** A source of texts of about `chars` characters each. */
export function longTexts(seed = 42): (chars: number) => string {
  let state = seed;
  const random = (): number => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const vocabulary = Array.from({ length: 20_000 }, () => {
    let word = '';
    for (let n = 2 + Math.floor(random() * 3); n > 0; n--) word += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    return word;
  });
  return (chars) => {
    const words: string[] = [];
    for (let length = 0; length < chars;) {
      const word = vocabulary[Math.floor(random() ** 3 * vocabulary.length)]!;
      words.push(word);
      length += word.length + 1;
    }
    return words.join(' ');
  };
}

/** `count` jobs `long-0` … named `talk-N.mp4`, each indexed with a text of `chars` characters; their ids. */
export async function indexLongJobs(store: JobStore, count: number, chars: number): Promise<string[]> {
  const text = longTexts();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `long-${i}`;
    await store.createOrGet({ jobId: id, file: { path: `/media/talk-${i}.mp4` } });
    await store.index(id, { name: `talk ${i} mp4`, body: text(chars) });
    ids.push(id);
  }
  return ids;
}
