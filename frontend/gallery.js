// The gallery's list as data: the filter, the items loaded so far (page by
// page), the total the server counts for the filter, and the changes a person
// makes (star, delete). Pure: gallery-panel.js does the asking and the drawing.

export const PAGE_SIZE = 48;
export const MAX_LIMIT = 200; // the largest `limit` GET /api/outputs takes
export const FILTER_DEBOUNCE_MS = 300;
const MAX_QUERY = 200;

export const NO_FILTER = Object.freeze({ q: "", starred: false });

/** {q, starred} from anything: q trimmed (inner spaces kept: "red house" is one phrase). */
export function normalizeFilter(raw = {}) {
  const q = typeof raw.q === "string" ? raw.q.trim().slice(0, MAX_QUERY) : "";
  return { q, starred: raw.starred === true };
}

export function sameFilter(a, b) {
  return a.q === b.q && a.starred === b.starred;
}

export function isFiltered(filter) {
  return filter.q !== "" || filter.starred;
}

/** GET /api/outputs query parameters for one page: only the filters in use, then the range. */
export function outputsQuery(filter, offset, limit) {
  const query = {};
  if (filter.q) query.q = filter.q;
  if (filter.starred) query.starred = "1";
  query.offset = String(offset);
  query.limit = String(limit);
  return query;
}

/**
 * The requests that reload what is shown (whole pages, at least one), each
 * within the server's limit: after a job ends the gallery keeps as many items
 * as the person had paged in, so it keeps its place.
 */
export function reloadRanges(shown, pageSize = PAGE_SIZE, maxLimit = MAX_LIMIT) {
  const wanted = Math.max(1, Math.ceil(shown / pageSize)) * pageSize;
  const ranges = [];
  for (let offset = 0; offset < wanted; offset += maxLimit) {
    ranges.push({ offset, limit: Math.min(maxLimit, wanted - offset) });
  }
  return ranges;
}

/** Items in order, each name once: a save between two page loads shifts the offsets by one. */
export function mergePages(...pages) {
  const seen = new Set();
  const merged = [];
  for (const page of pages) {
    for (const item of page) {
      if (!item || typeof item.name !== "string" || seen.has(item.name)) continue;
      seen.add(item.name);
      merged.push(item);
    }
  }
  return merged;
}

/** The pages loaded so far under one filter, and what the person changed in them. */
export class GalleryList {
  constructor() {
    this.filter = { ...NO_FILTER };
    this.items = [];
    this.total = 0;
  }

  /** A new filter starts over at the first page; returns whether it changed. */
  setFilter(raw) {
    const filter = normalizeFilter(raw);
    if (sameFilter(filter, this.filter)) return false;
    this.filter = filter;
    return true;
  }

  /**
   * The list as the server answered it (a first page, or the reload of all
   * shown pages). total: X-Total-Count, or null from a server without paging
   * (then the answer was everything).
   */
  replace(items, total) {
    this.items = mergePages(items);
    this.total = total ?? this.items.length;
  }

  /** The next page, after what is shown. */
  append(items, total) {
    this.items = mergePages(this.items, items);
    this.total = total ?? this.items.length;
  }

  get nextOffset() {
    return this.items.length;
  }

  get hasMore() {
    return this.items.length < this.total;
  }

  find(name) {
    return this.items.find((item) => item.name === name) ?? null;
  }

  /** Mark an item starred or not (as the server confirmed). It stays in view even under "starred only". */
  setStarred(name, starred) {
    this.items = this.items.map((item) => (item.name === name ? { ...item, starred } : item));
  }

  /** Take a deleted item out; returns it (null when it was not shown). */
  remove(name) {
    const item = this.find(name);
    if (!item) return null;
    this.items = this.items.filter((other) => other.name !== name);
    this.total = Math.max(0, this.total - 1);
    return item;
  }

  /**
   * Short, for the panel's head: "48 of 130", "130 images", "3 starred", "2 matching" (the
   * filter field beside it says what matches); countTitle says it in full.
   */
  get countText() {
    if (this.total === 0) return "";
    const what = [this.filter.starred ? "starred" : "", this.filter.q ? "matching" : ""].filter(Boolean).join(" ");
    if (this.items.length < this.total) return `${this.items.length} of ${this.total}${what ? ` ${what}` : ""}`;
    return what ? `${this.total} ${what}` : `${this.total} ${this.total === 1 ? "image" : "images"}`;
  }

  /** "Showing 48 of 130 starred images matching “fire”". */
  get countTitle() {
    const { q, starred } = this.filter;
    const noun = `${starred ? "starred " : ""}${this.total === 1 ? "image" : "images"}${q ? ` matching “${q}”` : ""}`;
    return `Showing ${this.items.length} of ${this.total} ${noun}`;
  }

  /** What the empty list says: why nothing shows. */
  get emptyText() {
    const { q, starred } = this.filter;
    if (q && starred) return `No starred images match “${q}”.`;
    if (q) return `No images match “${q}”.`;
    if (starred) return "No starred images yet: star one with ☆.";
    return "Finished images appear here.";
  }
}
