// The models folder on the page: the picker's listing and selection, and the LoRA rows'
// state. Talks to the server through the functions it is given and to the page through
// LibraryView; the decisions are in models.js and loras.js. No DOM here.

import { findRecordedModel, listedModel, modelOptions } from "./models.js";
import { loraRows, lorasDefaults, lorasFromMetadata, lorasPayload, normalizeLoraState, withLora } from "./loras.js";

const REFRESH_AFTER_MS = 2000; // opening the picker twice in a row lists the folder once

export class ModelLibrary {
  /**
   * listModels() -> GET /api/models; selectModel(name) -> the select_model ack.
   * onChanged(): the LoRAs' or the model's advice may differ (recompute the Apply advice).
   * onSwitched(ack): a switch was accepted (the recommended settings follow the new model).
   * say(text, tone): a message for the person (the job message line).
   */
  constructor({ view, store, listModels, selectModel, onChanged = () => {}, onSwitched = () => {}, say = () => {} }) {
    Object.assign(this, { view, store, listModels, selectModel, onChanged, onSwitched, say });
    this.listing = null;
    this.current = null; // the selected model's name (what a generate without `model` runs on)
    this.family = null; // its family label, when the listing or an ack said
    this.state = normalizeLoraState(store?.loadLoras?.());
    this.refreshing = null;
    this.refreshedAt = 0;
  }

  /** GET /api/models again (cheap: the server caches); at most one at a time. */
  refresh({ force = true } = {}) {
    if (this.refreshing) return this.refreshing;
    if (!force && Date.now() - this.refreshedAt < REFRESH_AFTER_MS) return Promise.resolve(this.listing);
    this.refreshing = (async () => {
      try {
        const listing = await this.listModels();
        this.listing = listing;
        this.refreshedAt = Date.now();
        if (typeof listing.current === "string" && !this.switching) this.current = listing.current;
        this.family = listedModel(listing, this.current)?.family ?? this.family;
        this.render();
        this.onChanged();
      } catch (err) {
        this.view.showModelsError(`The models folder could not be listed: ${err.message}`);
      } finally {
        this.refreshing = null;
      }
      return this.listing;
    })();
    return this.refreshing;
  }

  /** The picker was opened or focused: a file may have been added to the folder meanwhile. */
  opened() {
    return this.refresh({ force: false });
  }

  get modelFamily() {
    return listedModel(this.listing, this.current)?.family ?? this.family;
  }

  get rows() {
    return loraRows(this.listing?.loras, this.state, this.modelFamily);
  }

  render() {
    this.view.showModels(modelOptions(this.listing), this.current);
    this.view.showLoras(this.rows, { folder: this.listing?.models_dir ?? "models" });
  }

  /** The person chose `name` in the picker: select it on the server; back to the current one if refused. */
  async choose(name) {
    if (!name || name === this.current) return true;
    const previous = this.current;
    this.switching = true;
    this.view.showPicked(name);
    let ack;
    try {
      ack = await this.selectModel(name);
    } finally {
      this.switching = false;
    }
    if (ack?.error || !ack?.ok) {
      this.view.showPicked(previous);
      this.say(`Model not switched: ${ack?.error || "the server did not say why."}`, "error");
      return false;
    }
    this.current = ack.model ?? name;
    this.family = ack.family ?? listedModel(this.listing, this.current)?.family ?? null;
    this.render();
    this.onChanged();
    this.onSwitched(ack);
    return true;
  }

  /** model_status: another tab may have switched; returns whether the selection changed. */
  onStatus(status) {
    if (typeof status?.current !== "string" || status.current === this.current || this.switching) return false;
    this.current = status.current;
    this.family = listedModel(this.listing, this.current)?.family ?? null;
    this.render();
    this.onChanged();
    return true;
  }

  /** model_error: the load failed and `current` (the previous model) keeps serving. */
  onError({ model, error, current }) {
    if (typeof current === "string") this.current = current;
    this.family = listedModel(this.listing, this.current)?.family ?? this.family;
    this.render();
    this.onChanged();
    this.say(`${model ?? "The model"} could not be loaded: ${error ?? "see the server log"}` +
      (this.current ? ` Still using ${this.current}.` : ""), "error");
  }

  /** A LoRA row changed: {enabled?, weight?}. */
  setLora(name, change) {
    this.state = withLora(this.state, name, change);
    this.store?.saveLoras?.(this.state);
    this.view.showLoras(this.rows, { folder: this.listing?.models_dir ?? "models" });
    this.onChanged();
  }

  /** generate's `loras` ([{name, weight}], empty when none is on). */
  payload() {
    return lorasPayload(this.rows);
  }

  /** The recommended settings the enabled LoRAs bring. */
  defaults() {
    return lorasDefaults(this.rows);
  }

  /**
   * "Use these settings": the output's LoRAs on at their weights (the others off), and its
   * model selected when it is another listed one. Resolves with lines to tell the person.
   */
  async restore(meta) {
    await this.refresh();
    const notes = [];
    const { state, missing } = lorasFromMetadata(meta?.loras, this.listing?.loras, this.state);
    this.state = state;
    this.store?.saveLoras?.(state);
    if (missing.length) {
      notes.push(`Not in the LoRA folder, so left out: ${missing.join(", ")}.`);
    }
    if (meta?.model != null && this.listing) {
      const { entry, missing: why } = findRecordedModel(this.listing, meta.model);
      if (why) notes.push(why);
      else if (entry.name !== this.current) await this.choose(entry.name);
    }
    this.render();
    this.onChanged();
    return notes;
  }
}
