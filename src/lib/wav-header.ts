/**
 * What a WAV file's header claims. Its `data` chunk states how many bytes of sound follow; an upload cut short keeps
 * the header of the whole file, and ffmpeg reads what is there without a word (its duration is taken from the file's
 * size). Comparing the two says how much is missing. Every length read here is checked against the bytes at hand.
 */

export interface WavClaim {
  /** The length the data chunk's size stands for. */
  declaredSec: number;
  /** The length of the sound the file holds. */
  presentSec: number;
}

/** `head`: the file's first bytes (64 KiB is plenty: the chunks before `data` are small); `size`: the file's size. */
export function wavClaim(head: Buffer, size: number): WavClaim | null {
  if (head.length < 12 || head.toString('latin1', 0, 4) !== 'RIFF' || head.toString('latin1', 8, 12) !== 'WAVE')
    return null;
  let byteRate = 0;
  for (let at = 12; at + 8 <= head.length;) {
    const id = head.toString('latin1', at, at + 4);
    const length = head.readUInt32LE(at + 4);
    const body = at + 8;
    if (id === 'fmt ' && length >= 16 && body + 16 <= head.length) byteRate = head.readUInt32LE(body + 8);
    if (id === 'data') {
      // 0 and 0xFFFFFFFF: a stream written without knowing its length (or RF64), which claims nothing.
      if (byteRate <= 0 || length === 0 || length === 0xffffffff) return null;
      return { declaredSec: length / byteRate, presentSec: Math.max(0, size - body) / byteRate };
    }
    // Chunks are padded to an even length.
    at = body + length + (length % 2);
  }
  return null;
}
