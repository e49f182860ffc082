// The gallery panel's controller: the saved outputs (filter, pages, star,
// delete with undo) and this tab's Live row (keep). It asks the server through
// the api functions it is given and draws through two views; no DOM here.

import { GalleryList, PAGE_SIZE, outputsQuery, reloadRanges } from "./gallery.js";
import { LIVE, LiveSession } from "./live-row.js";

export class GalleryPanel {
  /**
   * api: {listOutputsPage, trashOutput, restoreOutput, starOutput, keepLiveResult} (api.js).
   * view: gallery-view.js; liveView: live-row-view.js.
   */
  constructor({ api, view, liveView }) {
    Object.assign(this, { api, view, liveView });
    this.list = new GalleryList();
    this.live = new LiveSession();
    this.highlight = null; // the newest arrival (a finished job's output, a kept Live result)
    this.token = 0; // every load that replaces or extends the list; only the newest one's answer counts
    this.loading = false;
    this.trashed = null; // the last deleted item, for Undo
    this.gone = new Map(); // name deleted here -> the newest load token then: loads begun before it may still list it
  }

  /**
   * Reload what is shown, under the same filter and as many pages as were
   * loaded, so the gallery keeps its place. `highlight` marks a new arrival.
   */
  async refresh({ highlight } = {}) {
    if (highlight !== undefined) this.highlight = highlight;
    const token = ++this.token;
    const filter = this.list.filter;
    this.#loading(true);
    try {
      const pages = await Promise.all(
        reloadRanges(this.list.items.length).map(({ offset, limit }) => this.api.listOutputsPage(outputsQuery(filter, offset, limit))),
      );
      if (token !== this.token) return;
      // The first page's total: the count matching the filter when the reload began.
      this.list.replace(...this.#present(token, pages.flatMap((page) => page.items), pages[0]?.total ?? null));
      this.#render();
    } catch (err) {
      if (token === this.token) this.view.showError(`Could not load the gallery: ${err.message}`);
    } finally {
      if (token === this.token) this.#loading(false);
    }
  }

  /** A new filter (the search field, debounced, or the starred toggle): back to the first page. */
  async setFilter(filter) {
    if (!this.list.setFilter(filter)) return;
    this.list.replace([], 0);
    this.view.scrollToTop();
    await this.refresh();
  }

  /** "Load more": the next page after what is shown. */
  async loadMore() {
    if (this.loading || !this.list.hasMore) return;
    const token = ++this.token;
    this.#loading(true);
    try {
      const page = await this.api.listOutputsPage(outputsQuery(this.list.filter, this.list.nextOffset, PAGE_SIZE));
      if (token !== this.token) return;
      this.list.append(...this.#present(token, page.items, page.total));
      this.#render();
    } catch (err) {
      if (token === this.token) this.view.showNotice(`Could not load more: ${err.message}`, { tone: "error" });
    } finally {
      if (token === this.token) this.#loading(false);
    }
  }

  async star(item, starred) {
    try {
      const answer = await this.api.starOutput(item.name, starred);
      this.list.setStarred(item.name, answer?.starred ?? starred);
      this.#render();
    } catch (err) {
      this.view.showNotice(`Not ${starred ? "starred" : "unstarred"}: ${err.message}`, { tone: "error" });
      this.#render(); // puts the toggle back as the server has it
    }
  }

  /** Delete: the server moves it to outputs/.trash/; the notice offers Undo. */
  async trash(item) {
    try {
      await this.api.trashOutput(item.name);
    } catch (err) {
      this.view.showNotice(`Not deleted: ${err.message}`, { tone: "error" });
      return;
    }
    this.gone.set(item.name, this.token);
    this.list.remove(item.name);
    this.trashed = item;
    this.#render();
    this.view.showNotice(`Deleted ${describe(item)}`, { undo: true });
  }

  /** Undo the last delete: back from the trash, and in its place in the list. */
  async undo() {
    const item = this.trashed;
    if (!item) return;
    this.trashed = null;
    try {
      await this.api.restoreOutput(item.name);
      this.gone.delete(item.name);
    } catch (err) {
      this.view.showNotice(`Not restored: ${err.message}`, { tone: "error" });
      return;
    }
    this.view.showNotice(`Restored ${describe(item)}`);
    await this.refresh();
  }

  // --- the Live row ---------------------------------------------------------------

  /** A Live job finished: its results go to the row, not the gallery. */
  addLive(done) {
    if (this.live.add(done)) this.liveView.render(this.live.entries);
  }

  /** Keep a Live result: the server saves it into the gallery, where it appears highlighted. */
  async keep(file) {
    if (!this.live.keeping(file)) return;
    this.liveView.render(this.live.entries);
    let item;
    try {
      item = await this.api.keepLiveResult(file);
    } catch (err) {
      this.live.failed(file, `Not kept: ${err.message}`);
      this.liveView.render(this.live.entries);
      return;
    }
    this.live.kept(file, item);
    this.liveView.render(this.live.entries);
    await this.refresh({ highlight: item?.name ?? null });
  }

  /** The Live result's URL to send to init: the gallery copy once kept (the live file may be pruned). */
  liveUrl(file) {
    const entry = this.live.find(file);
    if (!entry) return null;
    return entry.state === LIVE.KEPT && entry.keptUrl ? entry.keptUrl : entry.url;
  }

  /** [items, total] of a load (its token) without what was deleted here after the load began. */
  #present(token, items, total) {
    const shown = items.filter((item) => !(this.gone.get(item.name) >= token));
    return [shown, total == null ? null : Math.max(0, total - (items.length - shown.length))];
  }

  #render() {
    this.view.render(this.list.items, {
      highlight: this.highlight,
      countText: this.list.countText,
      countTitle: this.list.countTitle,
      emptyText: this.list.emptyText,
      hasMore: this.list.hasMore,
    });
  }

  #loading(on) {
    this.loading = on;
    this.view.setLoading(on);
  }
}

/** An output as a person knows it: its prompt (shortened), else its file name. */
function describe(item) {
  const prompt = (item.prompt ?? item.metadata?.prompt ?? "").trim();
  if (!prompt) return item.name;
  return `“${prompt.length > 40 ? `${prompt.slice(0, 39)}…` : prompt}”`;
}
