/** The top-level layout of an ISO BMFF (MP4, MOV) file, read from its box headers without parsing the boxes. */
import fs from 'node:fs/promises';

/** More top-level boxes than any real file has: past this, the file is not read further. */
const MAX_BOXES = 1000;

/**
 * The types of the file's top-level boxes in order (`ftyp`, `moov`, `mdat`…), from their 8- or 16-byte headers. Stops
 * at the first header that does not fit the file (a cut or damaged file keeps the boxes before it).
 */
export async function topLevelBoxes(file: string): Promise<string[]> {
  const handle = await fs.open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const header = Buffer.alloc(16);
    const types: string[] = [];
    let offset = 0;
    while (offset + 8 <= fileSize && types.length < MAX_BOXES) {
      const { bytesRead } = await handle.read(header, 0, 16, offset);
      if (bytesRead < 8) break;
      let size = header.readUInt32BE(0);
      const type = header.toString('latin1', 4, 8);
      if (size === 1) {
        if (bytesRead < 16) break;
        size = Number(header.readBigUInt64BE(8));
      } else if (size === 0) size = fileSize - offset;
      if (size < 8 || offset + size > fileSize) break;
      types.push(type);
      offset += size;
    }
    return types;
  } finally {
    await handle.close();
  }
}

/** Whether the index (`moov`) comes before the media data (`mdat`): a browser can start playing before the end. */
export async function hasFastStart(file: string): Promise<boolean> {
  const boxes = await topLevelBoxes(file);
  const moov = boxes.indexOf('moov');
  const mdat = boxes.indexOf('mdat');
  return moov >= 0 && (mdat < 0 || moov < mdat);
}
