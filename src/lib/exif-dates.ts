/**
 * EXIF dates as cameras write them: "2019:06:01 12:34:56", the camera's local time, with the offset from UTC in a
 * tag of its own (OffsetTimeOriginal, EXIF 2.31) when the camera knows it. Read as UTC (what a Date made from the
 * string in a UTC process says), a photo taken at noon in Berlin would claim 12:00Z. GPS dates and times are UTC.
 */

const EXIF_DATE = /^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/;
const OFFSET = /^([+-])(\d{2}):(\d{2})$/;

/** A UTC offset as EXIF writes it ("+02:00"), or null when `raw` is none (or not one). */
export function exifOffset(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const m = OFFSET.exec(raw.replace(/\0/g, '').trim());
  if (!m || Number(m[2]) > 14 || Number(m[3]) > 59) return null;
  return `${m[1]}${m[2]}:${m[3]}`;
}

/**
 * An EXIF date as ISO 8601: with its offset when one is known ("2019-06-01T12:34:56+02:00"), else as a local time
 * without a zone ("2019-06-01T12:34:56"); fractions of a second from the SubSecTime tag. Null for anything that is
 * not a real date (cameras write "0000:00:00 00:00:00" when their clock was never set).
 */
export function exifDate(raw: unknown, offset: string | null, subSec?: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const m = EXIF_DATE.exec(raw.replace(/\0/g, '').trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const check = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (y < 1800 || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59)
    return null;
  const fraction = typeof subSec === 'string' || typeof subSec === 'number' ? String(subSec).trim() : '';
  const sub = /^\d{1,9}$/.test(fraction) ? `.${fraction}` : '';
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${sub}${offset ?? ''}`;
}

/** GPSDateStamp ("2008:10:23") and GPSTimeStamp ([14, 27, 7.24]) as one UTC time, or null. */
export function gpsTimestamp(date: unknown, time: unknown): string | null {
  if (typeof date !== 'string' || !Array.isArray(time) || time.length !== 3) return null;
  const d = /^(\d{4}):(\d{2}):(\d{2})$/.exec(date.replace(/\0/g, '').trim());
  const [h, m, s] = time as unknown[];
  if (!d || typeof h !== 'number' || typeof m !== 'number' || typeof s !== 'number') return null;
  if (!(h >= 0 && h < 24 && m >= 0 && m < 60 && s >= 0 && s < 61)) return null;
  const ms = Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3]), h, m, 0) + Math.round(s * 1000);
  return Number.isFinite(ms) && Number(d[1]) >= 1800 ? new Date(ms).toISOString() : null;
}
