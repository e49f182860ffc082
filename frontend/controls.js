// The settings form: reads and writes settings, keeps the visible numbers in
// step with the inputs, and turns strength-slider gestures into "preview the
// plan" and "commit" calls (see SliderIntent in timing.js).

import { SAMPLERS, normalizeSettings, randomSeed } from "./settings.js";
import { SliderIntent } from "./timing.js";

export class Controls {
  /**
   * form: the <form id="settings">. handlers:
   *   onChange(settings, {field})  any setting changed (typing included)
   *   onStrengthPreview(settings)  the slider moved (throttled)
   *   onStrengthCommit(settings)   the slider was released or paused on a value
   *   onSubmit()                   Generate button or Ctrl/Cmd+Enter
   */
  constructor(form, handlers) {
    this.form = form;
    this.handlers = handlers;
    this.el = {
      strength: form.querySelector("#strength"),
      strengthValue: form.querySelector("#strength-value"),
      strengthHint: form.querySelector("#strength-hint"),
      sampler: form.querySelector("#sampler"),
      seed: form.querySelector("#seed"),
      randomSeed: form.querySelector("#random-seed"),
      dice: form.querySelector("#seed-dice"),
      exactN: form.querySelector("#exact-steps-n"),
      kbd: form.querySelector("#generate-kbd"),
      width: form.querySelector("#width"),
      height: form.querySelector("#height"),
    };
    for (const [value, label] of SAMPLERS) this.el.sampler.add(new Option(label, value));
    if (/Mac|iPhone|iPad/.test(globalThis.navigator?.platform ?? "")) this.el.kbd.textContent = "⌘ ↵";
    // The hint hides in narrow columns; the tooltip still tells the shortcut.
    this.el.kbd.parentElement.title = `Generate (${this.el.kbd.textContent.replace(" ↵", "+Enter")})`;

    this.slider = new SliderIntent({
      onPreview: () => this.handlers.onStrengthPreview(this.read()),
      onCommit: () => this.handlers.onStrengthCommit(this.read()),
    });
    this.#bind();
  }

  /** Current settings from the inputs, cleaned up. */
  read() {
    const f = this.form.elements;
    return normalizeSettings({
      prompt: f.prompt.value,
      negative_prompt: f.negative_prompt.value,
      strength: f.strength.value,
      steps: f.steps.value,
      cfg_scale: f.cfg_scale.value,
      seed: f.seed.value,
      random_seed: f.random_seed.checked,
      sampler: f.sampler.value,
      width: f.width.value,
      height: f.height.value,
      fit: f.fit.checked,
      exact_steps: f.exact_steps.checked,
      preview_kind: f.preview_kind.value,
      live: f.live.checked,
    });
  }

  /** Put settings into the inputs (restore, gallery "use these settings"). */
  write(settings) {
    const s = normalizeSettings(settings);
    const f = this.form.elements;
    f.prompt.value = s.prompt;
    f.negative_prompt.value = s.negative_prompt;
    f.strength.value = String(s.strength);
    f.steps.value = String(s.steps);
    f.cfg_scale.value = String(s.cfg_scale);
    f.seed.value = String(s.seed);
    f.random_seed.checked = s.random_seed;
    f.sampler.value = s.sampler;
    f.width.value = String(s.width);
    f.height.value = String(s.height);
    f.fit.checked = s.fit;
    f.exact_steps.checked = s.exact_steps;
    f.preview_kind.value = s.preview_kind;
    f.live.checked = s.live;
    this.slider.reset();
    this.#reflect(s);
  }

  /** Show the seed a random run actually used, without turning random off. */
  showSeed(seed) {
    if (Number.isInteger(seed)) this.form.elements.seed.value = String(seed);
  }

  /** The strength hint depends on whether there is an init image. */
  setHasInit(hasInit) {
    this.hasInit = hasInit;
    this.#reflect(this.read());
  }

  #reflect(s) {
    this.el.strengthValue.value = s.strength.toFixed(2);
    this.el.strengthValue.textContent = s.strength.toFixed(2);
    this.el.strength.setAttribute("aria-valuetext", s.strength.toFixed(2));
    this.el.strength.style.setProperty("--fill", `${s.strength * 100}%`);
    this.el.exactN.textContent = String(s.steps);
    this.el.seed.classList.toggle("is-random", s.random_seed);
    this.el.strengthHint.textContent = this.hasInit
      ? "How far SD may move away from your image: it skips the first (1 − strength) of the schedule."
      : "Strength applies once there is an init image; without one every step runs (text-to-image).";
    this.form.classList.toggle("no-init", !this.hasInit);
  }

  #bind() {
    const { form, el } = this;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.handlers.onSubmit();
    });
    // Ctrl/Cmd+Enter anywhere on the page generates, even from inside a textarea.
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !e.repeat) {
        e.preventDefault();
        this.handlers.onSubmit();
      }
    });
    el.strength.addEventListener("input", () => {
      this.#reflect(this.read());
      this.slider.input(el.strength.value);
    });
    el.strength.addEventListener("change", () => this.slider.release(el.strength.value));
    el.dice.addEventListener("click", () => {
      form.elements.seed.value = String(randomSeed());
      form.elements.random_seed.checked = false;
      this.#changed("seed");
    });
    el.seed.addEventListener("input", () => {
      form.elements.random_seed.checked = false;
    });
    // Width/height snap to multiples of 8 when the field is left, not while typing.
    for (const input of [el.width, el.height, form.elements.steps, el.seed, form.elements.cfg_scale]) {
      input.addEventListener("blur", () => this.write(this.read()));
    }
    // Typed fields report on input; toggles and selects on change (the slider has its own path above).
    const typed = (t) => t.matches("textarea, input[type=number]");
    form.addEventListener("input", (e) => {
      if (e.target.name && typed(e.target)) this.#changed(e.target.name);
    });
    form.addEventListener("change", (e) => {
      if (e.target.name && e.target !== el.strength && !typed(e.target)) this.#changed(e.target.name);
    });
  }

  #changed(field) {
    const s = this.read();
    this.slider.reset(); // a new setting makes the same strength a new run
    this.#reflect(s);
    this.handlers.onChange(s, { field });
  }
}
