// Real PNG bytes for tests, built chunk by chunk with node's own zlib (CRC-32 and deflate),
// as Pillow and A1111 write them.
import { crc32, deflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

export function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "latin1"), Buffer.from(data)]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A 1×1 RGB PNG with `before` chunks ahead of its pixels and `after` chunks behind them. */
export function png(before = [], after = []) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const idat = deflateSync(Buffer.from([0, 200, 40, 40]));
  return new Uint8Array(Buffer.concat([SIGNATURE, chunk("IHDR", ihdr), ...before, chunk("IDAT", idat), ...after, chunk("IEND", Buffer.alloc(0))]));
}

export const tEXt = (key, text) => chunk("tEXt", Buffer.concat([Buffer.from(key, "latin1"), Buffer.from([0]), Buffer.from(text, "latin1")]));
export const zTXt = (key, text) => chunk("zTXt", Buffer.concat([Buffer.from(key, "latin1"), Buffer.from([0, 0]), deflateSync(Buffer.from(text, "latin1"))]));
export function iTXt(key, text, { compress = false } = {}) {
  const body = compress ? deflateSync(Buffer.from(text, "utf8")) : Buffer.from(text, "utf8");
  return chunk("iTXt", Buffer.concat([Buffer.from(key, "latin1"), Buffer.from([0, compress ? 1 : 0, 0]), Buffer.from("\0\0"), body]));
}

