// The inpainting mask as pixels: what "Use drawing" uploads and what the pad shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ERASED_ALPHA, checkerCell, checkerColor, checkerOverlay, checkerTile, compositeErased, countErased, maskFromOverlay, splitAlpha,
} from "../mask.js";

/** RGBA bytes from [[r, g, b, a], ...]. */
const px = (...pixels) => new Uint8ClampedArray(pixels.flat());

test("the mask is white where the overlay is erased (alpha >= 128), black and opaque elsewhere", () => {
  const overlay = px([0, 0, 0, 0], [204, 204, 204, 255], [153, 153, 153, ERASED_ALPHA], [1, 2, 3, ERASED_ALPHA - 1]);
  const { pixels, erased } = maskFromOverlay(overlay);
  assert.equal(erased, 2);
  assert.deepEqual([...pixels], [0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 255]);
  assert.equal(countErased(overlay), 2, "the antialiased edge below the threshold is not erased");
});

test("the thumbnail composite keeps every RGB value and only sets alpha", () => {
  const color = px([10, 20, 30, 255], [40, 50, 60, 255]);
  const overlay = px([0, 0, 0, 0], [204, 204, 204, 255]);
  assert.deepEqual([...compositeErased(color, overlay)], [10, 20, 30, 255, 40, 50, 60, 0]);
  assert.throws(() => compositeErased(color, px([0, 0, 0, 0])), /differ in size/);
});

test("an uploaded image with alpha: opaque colours with the RGB kept, alpha < 255 erased", () => {
  const rgba = px([200, 10, 10, 255], [11, 22, 33, 0], [44, 55, 66, 254]);
  const { color, erased, count } = splitAlpha(rgba);
  assert.deepEqual([...color], [200, 10, 10, 255, 11, 22, 33, 255, 44, 55, 66, 255], "RGB under alpha 0 kept");
  assert.deepEqual([...erased], [0, 1, 1]);
  assert.equal(count, 2);
  assert.deepEqual([...rgba], [200, 10, 10, 255, 11, 22, 33, 0, 44, 55, 66, 254], "the input is not changed");
});

test("the checkerboard overlay covers exactly the erased pixels, and round-trips to the same mask", () => {
  const width = 4;
  const height = 2;
  const erased = new Uint8Array([0, 1, 1, 0, 0, 0, 1, 1]);
  const overlay = checkerOverlay(erased, width, height, 1);
  const alphas = [];
  for (let i = 3; i < overlay.length; i += 4) alphas.push(overlay[i]);
  assert.deepEqual(alphas, [0, 255, 255, 0, 0, 0, 255, 255]);
  // Neighbouring squares differ: (1,0) and (2,0) are on different squares at cell size 1.
  assert.notDeepEqual([...overlay.slice(4, 7)], [...overlay.slice(8, 11)]);
  const { pixels } = maskFromOverlay(overlay);
  const white = [];
  for (let i = 0; i < pixels.length; i += 4) white.push(pixels[i] === 255 ? 1 : 0);
  assert.deepEqual(white, [...erased]);
  assert.throws(() => checkerOverlay(erased, 3, 3), /does not match/);
});

test("checker cells: about 32 across, at least 2 px; the tile matches the overlay's colours", () => {
  assert.equal(checkerCell(512), 16);
  assert.equal(checkerCell(40), 2);
  const { pixels, size } = checkerTile(3);
  assert.equal(size, 6);
  for (const [x, y] of [[0, 0], [4, 1], [2, 5], [5, 5]]) {
    const i = (y * size + x) * 4;
    assert.deepEqual([...pixels.slice(i, i + 3)], checkerColor(x, y, 3));
    assert.equal(pixels[i + 3], 255);
  }
  assert.notDeepEqual(checkerColor(0, 0, 3), checkerColor(3, 0, 3));
});
