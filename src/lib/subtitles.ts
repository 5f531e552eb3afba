/** Timed transcripts as SRT and WebVTT, and SRT read back into segments. */

export interface Cue {
  /** Seconds from the start. */
  start: number;
  end: number;
  text: string;
}

function stamp(sec: number, separator: ',' | '.'): string {
  const ms = Math.max(0, Math.round(sec * 1000));
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${separator}${pad(ms % 1000, 3)}`;
}

export function toSrt(cues: readonly Cue[]): string {
  return cues
    .map((c, i) => `${i + 1}\n${stamp(c.start, ',')} --> ${stamp(c.end, ',')}\n${oneBlock(c.text)}\n`)
    .join('\n');
}

export function toVtt(cues: readonly Cue[]): string {
  return `WEBVTT\n\n${cues.map((c) => `${stamp(c.start, '.')} --> ${stamp(c.end, '.')}\n${oneBlock(c.text)}\n`).join('\n')}`;
}

/** A cue's text may not hold a blank line (it would end the cue) nor `-->`. */
function oneBlock(text: string): string {
  return (
    text
      .replace(/\r/g, '')
      .replace(/-->/g, '->')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .join('\n') || '…'
  );
}

const TIMING = /(\d+):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{1,3})/;

/** The cues of an SRT file (as ffmpeg writes it), markup removed. Malformed blocks are passed over. */
export function parseSrt(srt: string): Cue[] {
  const cues: Cue[] = [];
  for (const block of srt.replace(/\r/g, '').split(/\n{2,}/)) {
    const lines = block.split('\n');
    const at = lines.findIndex((l) => TIMING.test(l));
    if (at < 0) continue;
    const m = TIMING.exec(lines[at]!)!;
    const sec = (h: string, mi: string, s: string, ms: string): number =>
      Number(h) * 3600 + Number(mi) * 60 + Number(s) + Number(ms.padEnd(3, '0')) / 1000;
    const text = lines
      .slice(at + 1)
      .map((l) =>
        l
          .replace(/<[^>]+>/g, '')
          .replace(/\{\\[^}]*\}/g, '')
          .trim(),
      )
      .filter(Boolean)
      .join('\n');
    if (text) cues.push({ start: sec(m[1]!, m[2]!, m[3]!, m[4]!), end: sec(m[5]!, m[6]!, m[7]!, m[8]!), text });
  }
  return cues;
}
