// The gallery's list as data: queries, reloading what is shown, pages that
// overlap, counts and the empty list's words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GalleryList, MAX_LIMIT, PAGE_SIZE, mergePages, normalizeFilter, outputsQuery, reloadRanges } from "../gallery.js";

const item = (n, extra = {}) => ({ name: `${String(n).padStart(6, "0")}.7.png`, url: `/outputs/${n}`, ...extra });
const items = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => item(to - i)); // newest first

test("the query carries only the filters in use, then the range", () => {
  assert.deepEqual(outputsQuery({ q: "", starred: false }, 0, 48), { offset: "0", limit: "48" });
  assert.deepEqual(outputsQuery({ q: "red house", starred: true }, 96, 48), { q: "red house", starred: "1", offset: "96", limit: "48" });
  assert.equal(new URLSearchParams(outputsQuery({ q: "fire & ice", starred: false }, 0, 48)).toString(), "q=fire+%26+ice&offset=0&limit=48");
});

test("filters are trimmed and typed; a new filter is reported once", () => {
  assert.deepEqual(normalizeFilter({ q: "  fire  ", starred: "yes" }), { q: "fire", starred: false });
  assert.deepEqual(normalizeFilter({ q: 7 }), { q: "", starred: false });
  const list = new GalleryList();
  assert.equal(list.setFilter({ q: " fire ", starred: false }), true);
  assert.equal(list.setFilter({ q: "fire", starred: false }), false);
  assert.equal(list.setFilter({ q: "fire", starred: true }), true);
});

test("a reload asks for every page shown, never more than the server's limit at once", () => {
  assert.deepEqual(reloadRanges(0), [{ offset: 0, limit: PAGE_SIZE }]);
  assert.deepEqual(reloadRanges(48), [{ offset: 0, limit: 48 }]);
  assert.deepEqual(reloadRanges(49), [{ offset: 0, limit: 96 }]);
  // 5 pages (240 items) in two requests: 200 + 40.
  assert.deepEqual(reloadRanges(230), [{ offset: 0, limit: MAX_LIMIT }, { offset: 200, limit: 40 }]);
});

test("pages that overlap (an output saved between two loads) keep each item once, in order", () => {
  const first = items(53, 100); // 100..53
  const second = items(5, 53); // 53 again at the top: everything shifted by one
  const merged = mergePages(first, second);
  assert.equal(merged.length, 96);
  assert.deepEqual(merged.slice(46, 49).map((i) => i.name), [item(54).name, item(53).name, item(52).name]);
});

test("paging: '48 of 130', more to load until all are shown", () => {
  const list = new GalleryList();
  list.replace(items(83, 130), 130);
  assert.equal(list.countText, "48 of 130");
  assert.equal(list.hasMore, true);
  assert.equal(list.nextOffset, 48);
  list.append(items(35, 82), 130);
  list.append(items(1, 34), 130);
  assert.equal(list.countText, "130 images");
  assert.equal(list.hasMore, false);
  list.replace([item(1)], 1);
  assert.equal(list.countText, "1 image");
});

test("counts and empty words say what the filter is", () => {
  const list = new GalleryList();
  list.setFilter({ q: "fire", starred: false });
  list.replace([item(3)], 1);
  assert.equal(list.countText, "1 matching");
  assert.equal(list.countTitle, "Showing 1 of 1 image matching “fire”");
  list.setFilter({ q: "fire", starred: true });
  assert.equal(list.countText, "1 starred matching");
  list.setFilter({ q: "", starred: true });
  list.replace(items(1, 48), 60);
  assert.equal(list.countText, "48 of 60 starred");
  assert.equal(list.countTitle, "Showing 48 of 60 starred images");
  list.replace([], 0);
  assert.equal(list.countText, "");
  assert.match(list.emptyText, /No starred images/);
  list.setFilter({ q: "moon", starred: false });
  assert.equal(list.emptyText, "No images match “moon”.");
  list.setFilter({ q: "", starred: false });
  assert.equal(list.emptyText, "Finished images appear here.");
});

test("a server without paging (no total) gave everything", () => {
  const list = new GalleryList();
  list.replace(items(1, 60), null);
  assert.equal(list.total, 60);
  assert.equal(list.hasMore, false);
});

test("star and delete change only that item; the total follows a delete", () => {
  const list = new GalleryList();
  list.replace(items(1, 3), 10);
  list.setStarred(item(2).name, true);
  assert.deepEqual(list.items.map((i) => i.starred === true), [false, true, false]);
  const removed = list.remove(item(3).name);
  assert.equal(removed.name, item(3).name);
  assert.deepEqual(list.items.map((i) => i.name), [item(2).name, item(1).name]);
  assert.equal(list.total, 9);
  assert.equal(list.remove("nothing.png"), null);
  assert.equal(list.total, 9);
});
