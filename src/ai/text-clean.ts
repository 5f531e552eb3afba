/**
 * What a document repeats or labels rather than says, taken out before its sentences are ranked: running headers
 * and footers, front matter and legal notices, tables of contents, reference lists; lines hyphenated at their ends
 * joined again; then the text cut into sentences that survive "PDF.js", "e.g.", "3.5", URLs and "[5][6]".
 */

/** Where a block of text sits in a document: the position prior favours abstracts and introductions. */
export type Section = 'front' | 'abstract' | 'introduction' | 'body' | 'conclusion';

export interface Block {
  text: string;
  section: Section;
}

export interface CleanDocument {
  blocks: Block[];
  /** Section headings in reading order, without their numbers ("Trace Trees", "Evaluation"). */
  headings: string[];
}

/** A notice, not content: copyright, permission, ISBN, rights, the "scanning, uploading…" warning, printing lines. */
export const LEGAL_NOTICE =
  /copyright|©|\(c\)\s*\d{4}|\ball rights reserved\b|\bpermission (to|of|from)\b|\bprior (specific |written )?permission\b|\bISBN\b|\bISSN\b|\bscanning, uploading\b|\bunauthori[sz]ed (copying|reproduction|distribution)\b|\bno part of this (book|publication|work)\b|\breproduced,? stored\b|\bprinted in (the )?\p{Lu}|\blibrary of congress\b|\bcataloging[- ]in[- ]publication\b|\bfirst (published|edition|printing)\b|\bthis is a work of fiction\b|\btrademarks?\b|\blicen[cs]ed? (under|to)\b|creative commons|\bpublished by\b|\bauthori[sz]ed (electronic )?editions?\b|\bpiracy\b|\bauthor['’]s rights\b|\bpunishable by law\b/iu;

/** Links, addresses and identifiers: a sentence holding one is a citation or a label, not a statement. */
const LINKISH = /https?:\/\/|www\.|\S+@\S+\.\w+|\bdoi:|\bdoi\.org\b|\barXiv:/i;

/** A sentence that starts a notice runs on over the lines after it, to its full stop. */
const NOTICE_START =
  /^(permission to|the scanning, uploading|no part of this|all rights reserved|this book is|this work is licensed|except as permitted|without (the )?prior|library of congress|to copy otherwise)/i;

/** Cover-page and front-matter lines that only label: "Keywords: …", "Permanent URL: …", a venue "PLDI’09, …". */
const LABEL_LINE =
  /^\s*(permanent url|url|doi|issn|isbn|e-?isbn|keywords?|key words|index terms|reference|citation|copyright|downloaded from|available at|categories and subject descriptors|general terms|acm reference format|received|accepted|published online|corresponding author|cover (design|art|image)|edited by|translated by)\b/i;
const VENUE_LINE = /^\p{Lu}{2,}\s?['’]\d{2}\b/u;

/** A table of contents line: a title, dot leaders or a gap, a page number. */
const TOC_LINE = /^(.{2,}?)(\s*(\.\s?){3,}|\s{2,}|\s)(\d{1,4}|[ivxlc]{1,6})$/i;

const REFERENCES_HEADING =
  /^\s*(\d+\.?\s+)?(references|bibliography|works cited|literature cited|notes and references|références|bibliographie|literatur(verzeichnis)?|referencias|bibliografía|bibliografia|riferimenti bibliografici)\s*$/i;

/** Numbered section headings: "1. Introduction", "3.2 Loop Tracing", "IV. RESULTS". */
const NUMBERED_HEADING = /^((\d{1,2}(\.\d{1,2}){0,3})\.?|[IVX]{1,5}\.)\s+(\p{Lu}[^.!?]{1,80})$/u;
const NAMED_HEADING =
  /^(abstract|summary|résumé|zusammenfassung|resumen|introduction|einleitung|introducción|introduzione|conclusions?|discussion|related work|background|acknowledge?ments?|appendix|preface|foreword|prologue|epilogue|chapter \S+|contents|table of contents)\s*$/i;

const TERMINAL = /[.!?…。！？]["'’”)\]]*(\[\d+([,–-]\s?\d+)*\])*$/u;

/** Joins the page texts of a document (pages separated by form feeds) into cleaned blocks of prose. */
export function cleanDocument(text: string): CleanDocument {
  const pages = text
    .replace(/\r\n?/g, '\n')
    .split('\f')
    .map((p) => p.split('\n').map((l) => l.replace(/[ \t\u00a0]+/g, ' ').trim()));
  const repeated = repeatedLines(pages);
  const frontPages = Math.max(2, Math.min(12, Math.ceil(pages.length * 0.1)));
  const lines: string[] = [];
  pages.forEach((page, n) => {
    if (n < frontPages && isFrontMatterPage(page)) return;
    if (isTocPage(page)) return;
    let inNotice = false;
    for (const line of page) {
      if (!line) continue;
      if (inNotice) {
        inNotice = !TERMINAL.test(line);
        continue;
      }
      if (NOTICE_START.test(line) || LABEL_LINE.test(line)) {
        inNotice = !TERMINAL.test(line);
        continue;
      }
      if (repeated.has(lineKey(line))) continue;
      if (VENUE_LINE.test(line) || /^(©|copyright\b)/i.test(line) || (LEGAL_NOTICE.test(line) && line.length < 90))
        continue;
      if (LINKISH.test(line) && line.split(' ').length <= 8) continue;
      const letters = (line.match(/\p{L}/gu) ?? []).length;
      if (letters / line.replace(/\s/g, '').length < 0.5) continue;
      if (/(\.\s?){4,}\s*\d+$/.test(line)) continue; // a contents line outside a contents page
      lines.push(line);
    }
    lines.push(''); // a page break ends a line, not a paragraph
  });
  return toBlocks(lines);
}

/** A running header or footer: a short line (page number aside) found on a third of the pages, three at least. */
function repeatedLines(pages: string[][]): Set<string> {
  const onPages = new Map<string, number>();
  for (const page of pages) {
    for (const k of new Set(page.filter((l) => l && l.length <= 120).map(lineKey))) {
      onPages.set(k, (onPages.get(k) ?? 0) + 1);
    }
  }
  const min = Math.max(3, Math.ceil(pages.length / 3));
  return new Set([...onPages].filter(([k, n]) => n >= min && k !== '#').map(([k]) => k));
}

const lineKey = (line: string): string =>
  line
    .toLowerCase()
    .replace(/\d+/g, '#')
    .replace(/^#\s*|\s*#$/g, '')
    .trim() || '#';

/** A copyright or title-verso page: two notices or more, and hardly a sentence of prose that is not one. */
function isFrontMatterPage(page: string[]): boolean {
  const notices = page.filter((l) => LEGAL_NOTICE.test(l) || NOTICE_START.test(l) || LABEL_LINE.test(l)).length;
  if (notices < 2) return false;
  const prose = splitSentences(joinLines(page))
    .filter((s) => endsLikeSentence(s) && !isBoilerplateSentence(s))
    .reduce((n, s) => n + (s.split(' ').length >= 6 ? s.split(' ').length : 0), 0);
  return prose < 60;
}

/** A contents page: most of its lines end in a page number. */
function isTocPage(page: string[]): boolean {
  const lines = page.filter(Boolean);
  if (lines.some((l) => /^(table of )?contents$|^sommaire$|^inhalt(sverzeichnis)?$|^índice$|^indice$/i.test(l))) {
    return lines.filter((l) => TOC_LINE.test(l)).length >= 3;
  }
  const numbered = lines.filter((l) => TOC_LINE.test(l) && !TERMINAL.test(l)).length;
  return lines.length >= 6 && numbered / lines.length >= 0.6;
}

/** Lines into paragraphs of prose, split at headings; the reference list and what follows it are left out. */
function toBlocks(lines: string[]): CleanDocument {
  const blocks: Block[] = [];
  const headings: string[] = [];
  let section: Section = 'front';
  let current: string[] = [];
  const flush = (): void => {
    const text = joinLines(current);
    if (text) blocks.push({ text, section });
    current = [];
  };
  const refsAt = lines.findLastIndex((l) => REFERENCES_HEADING.test(l));
  const end = refsAt >= lines.length * 0.5 ? refsAt : lines.length;
  for (let i = 0; i < end; i++) {
    const line = lines[i] ?? '';
    const heading = headingOf(line);
    if (heading !== null) {
      flush();
      if (heading) headings.push(heading);
      section = sectionOf(heading, section);
      continue;
    }
    // "Abstract. We present …" and "Abstract—We present …" open the abstract on their own line.
    const inline = /^(abstract|summary)\s*[.:—–-]\s*(?=\p{Lu})/iu.exec(line);
    if (inline) {
      flush();
      section = 'abstract';
      current.push(line.slice(inline[0].length));
      continue;
    }
    current.push(line);
  }
  flush();
  return { blocks, headings };
}

/** The heading a line is (its words, without a number), '' for one not worth listing, null for a line of text. */
function headingOf(line: string): string | null {
  if (!line || line.length > 90) return null;
  const numbered = NUMBERED_HEADING.exec(line);
  if (numbered && !/[,;]$/.test(line) && (numbered[4] ?? '').split(' ').length <= 10) {
    const words = (numbered[4] ?? '').trim();
    // A numbered list item is a sentence ("2 The loop runs …" is no heading when it ends in a full stop).
    if (!TERMINAL.test(words)) return words;
  }
  if (NAMED_HEADING.test(line)) return line.replace(/^\w/, (c) => c.toUpperCase());
  return null;
}

function sectionOf(heading: string, previous: Section): Section {
  if (/^(abstract|summary|résumé|zusammenfassung|resumen)$/i.test(heading)) return 'abstract';
  if (/^(introduction|einleitung|introducción|introduzione|preface|foreword)$/i.test(heading)) return 'introduction';
  if (/conclusion|discussion|summary/i.test(heading)) return 'conclusion';
  return previous === 'front' && heading === '' ? 'front' : 'body';
}

/** Lines of one paragraph as one line; a word cut by a hyphen at a line's end is joined again. */
function joinLines(lines: string[]): string {
  let out = '';
  for (const line of lines) {
    if (!line) continue;
    if (/\p{L}-$/u.test(out) && /^\p{Ll}/u.test(line)) out = out.slice(0, -1) + line;
    else out = out ? `${out} ${line}` : line;
  }
  return out.trim();
}

// ---- sentences ---------------------------------------------------------------------------------------------------

/** Words that end in a full stop without ending a sentence. */
const ABBREVIATIONS = new Set(
  (
    'e.g i.e etc vs cf al fig figs eq eqs no nos vol vols pp p ch sec dr mr mrs ms prof st jr sr inc ltd co corp ' +
    'approx ca resp dept univ ed eds est op cit ibid viz mt ft jan feb mar apr jun jul aug sep sept oct nov dec ' +
    'z.b d.h bzw usw vgl nr s.a mme mlle cf.'
  ).split(' '),
);

/**
 * Sentences of a paragraph. A break is a terminal mark (with closing quotes, brackets and citation marks such as
 * "[5][6]" after it), then space, then what can open a sentence. "PDF.js", "3.5" and URLs have no space after their
 * dot; "e.g." and initials ("J. Smith") are not ends.
 */
export function splitSentences(paragraph: string): string[] {
  const text = paragraph.replace(/\s+/g, ' ').trim();
  const out: string[] = [];
  const boundary =
    /([.!?…]+|[。！？])(["'’”)\]]*)((?:\[\d+(?:[,–-]\s?\d+)*\])*)(\s+)(?=["'‘“([¿¡]?[\p{Lu}\p{N}])|([。！？])/gu;
  let start = 0;
  for (const m of text.matchAll(boundary)) {
    const at = m.index;
    if (m[1]?.startsWith('.') && m[1].length === 1) {
      const word = /(\S+)$/.exec(text.slice(start, at))?.[1] ?? '';
      const bare = word.replace(/^["'‘“([]+/, '').toLowerCase();
      if (ABBREVIATIONS.has(bare) || /^\p{Lu}$/u.test(word) || /^(\p{L}\.)+\p{L}$/u.test(bare)) continue;
    }
    const end = at + m[0].length - (m[4]?.length ?? 0);
    out.push(text.slice(start, end).trim());
    start = at + m[0].length;
  }
  const rest = text.slice(start).trim();
  if (rest) out.push(rest);
  return out.filter(Boolean);
}

/** Ends like a sentence: a terminal mark, maybe closing quotes or brackets, maybe citation marks. */
export function endsLikeSentence(sentence: string): boolean {
  return TERMINAL.test(sentence);
}

/** A notice or a citation rather than a statement. */
export function isBoilerplateSentence(sentence: string): boolean {
  return LEGAL_NOTICE.test(sentence) || LINKISH.test(sentence) || NOTICE_START.test(sentence);
}
