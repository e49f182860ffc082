// The settings form: reads and writes settings, keeps the visible numbers in
// step with the inputs, and turns strength-slider gestures into "preview the
// plan" and "commit" calls (see SliderIntent in timing.js).

import { recommendationText, recommendedSettings } from "./recommended.js";
import { INTERMEDIATES, SAMPLERS, normalizeSettings, randomSeed } from "./settings.js";
import { SliderIntent } from "./timing.js";

export class Controls {
  /**
   * form: the <form id="settings">. handlers:
   *   onChange(settings, {field})  any setting changed (typing included)
   *   onStrengthPreview(settings)  the slider moved (throttled)
   *   onStrengthCommit(settings)   the slider was released or paused on a value
   *   onSubmit()                   Generate button or Ctrl/Cmd+Enter
   *   onSweep()                    the "Sweep strengths" button
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
      minTaken: form.querySelector("#min-taken-steps"),
      minTakenHint: form.querySelector("#min-taken-hint"),
      kbd: form.querySelector("#generate-kbd"),
      width: form.querySelector("#width"),
      height: form.querySelector("#height"),
      variation: form.querySelector("#variation-amount"),
      variationSlider: form.querySelector("#variation-slider"),
      withVariations: form.querySelector("#with-variations"),
      withVariationsText: form.querySelector("#with-variations-text"),
      withVariationsClear: form.querySelector("#with-variations-clear"),
      iterations: form.querySelector("#iterations"),
      batchSize: form.querySelector("#batch-size"),
      sweep: form.querySelector("#sweep"),
      sweepHint: form.querySelector("#sweep-hint"),
      intermediates: form.querySelector("#save-intermediates"),
      recommended: form.querySelector("#recommended"),
      recommendedText: form.querySelector("#recommended-text"),
      recommendedUse: form.querySelector("#recommended-use"),
    };
    this.recommended = {}; // the model's recommended settings (from /api/health)
    this.withVariations = []; // restored from a gallery item; no input of its own
    for (const [value, label] of SAMPLERS) this.el.sampler.add(new Option(label, value));
    for (const [value, label] of INTERMEDIATES) this.el.intermediates.add(new Option(label, value));
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
      min_taken_steps: f.min_taken_steps.value,
      live: f.live.checked,
      variation_amount: f.variation_amount.value,
      iterations: f.iterations.value,
      batch_size: f.batch_size.value,
      with_variations: this.withVariations,
      save_intermediates: f.save_intermediates.value,
      sweep_strengths: f.sweep_strengths.value,
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
    f.min_taken_steps.value = String(s.min_taken_steps);
    f.live.checked = s.live;
    f.variation_amount.value = String(s.variation_amount);
    f.iterations.value = String(s.iterations);
    f.batch_size.value = String(s.batch_size);
    f.save_intermediates.value = s.save_intermediates;
    f.sweep_strengths.value = s.sweep_strengths;
    this.withVariations = s.with_variations;
    this.slider.reset();
    this.#reflect(s);
  }

  /** The server's limits (settings.LIMITS) on the inputs themselves: the browser stops at them too. */
  setLimits(limits) {
    const f = this.form.elements;
    f.steps.max = String(limits.steps);
    f.min_taken_steps.max = String(limits.steps);
    f.seed.max = String(limits.seed);
    f.iterations.max = String(limits.iterations);
    f.batch_size.max = String(limits.batch_size);
  }

  /** Show the seed a random run actually used, without turning random off. */
  showSeed(seed) {
    if (Number.isInteger(seed)) this.form.elements.seed.value = String(seed);
  }

  /**
   * The recommended settings (the model's, its size after a switch, the enabled LoRAs'; see
   * recommended.combinedAdvice): the form says when it differs from them, with an Apply button.
   */
  recommend(defaults, subject = "This model recommends") {
    this.recommended = recommendedSettings(defaults);
    this.recommendedBy = subject;
    this.#reflect(this.read());
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
    // Exact steps already fixes how many are taken, so the server ignores the minimum then.
    this.el.minTaken.disabled = s.exact_steps;
    this.el.minTakenHint.textContent = s.exact_steps ? "exact steps decide" : "0 = off";
    this.el.seed.classList.toggle("is-random", s.random_seed);
    this.el.strengthHint.textContent = this.hasInit
      ? "How far SD may move away from your image: it skips the first (1 − strength) of the schedule."
      : "Strength applies once there is an init image; without one every step runs (text-to-image).";
    this.form.classList.toggle("no-init", !this.hasInit);
    this.el.variationSlider.value = String(s.variation_amount);
    this.el.variationSlider.style.setProperty("--fill", `${s.variation_amount * 100}%`);
    this.el.withVariations.hidden = s.with_variations.length === 0;
    this.el.withVariationsText.textContent = s.with_variations.length
      ? `Reproducing seed ${s.seed} with variation${s.with_variations.length > 1 ? "s" : ""} ` +
        s.with_variations.map(([seed, weight]) => `${seed} @ ${weight.toFixed(2)}`).join(", ")
      : "";
    const advice = recommendationText(this.recommended, s, this.recommendedBy);
    this.el.recommended.hidden = !advice;
    this.el.recommendedText.textContent = advice;
    this.el.sweep.disabled = !this.hasInit;
    this.el.sweepHint.textContent = this.hasInit
      ? "One output per strength, same seed and settings, shown side by side."
      : "A sweep needs an init image: strength only means something in img2img.";
  }

  #bind() {
    const { form, el } = this;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.handlers.onSubmit();
    });
    // Enter in a field keeps its value (snapped, as on leaving it) and does not start a run:
    // a run is the Generate button or Ctrl/Cmd+Enter.
    form.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.ctrlKey || e.metaKey || !e.target.matches("input")) return;
      e.preventDefault();
      if (e.target.matches("input[type=number]")) this.write(this.read());
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
    // The variation slider mirrors the number field (which is the setting itself).
    el.variationSlider.addEventListener("input", () => {
      form.elements.variation_amount.value = el.variationSlider.value;
      this.#changed("variation_amount");
    });
    el.withVariationsClear.addEventListener("click", () => {
      this.withVariations = [];
      this.#changed("with_variations");
    });
    el.sweep.addEventListener("click", () => this.handlers.onSweep());
    el.recommendedUse.addEventListener("click", () => {
      this.write({ ...this.read(), ...this.recommended });
      this.#changed("recommended");
    });
    // Width/height snap to multiples of 8 when the field is left, not while typing.
    for (const input of [el.width, el.height, form.elements.steps, el.minTaken, el.seed, form.elements.cfg_scale, el.variation, el.iterations, el.batchSize]) {
      input.addEventListener("blur", () => this.write(this.read()));
    }
    // Typed fields report on input; toggles and selects on change (the slider has its own path above).
    const typed = (t) => t.matches("textarea, input[type=number], input[type=text]");
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
