// A modal <dialog> that behaves the same everywhere on the page: Escape or a
// click on the backdrop dismisses it, and focus goes back to what opened it.
// Escape is caught on window in the capture phase while the dialog is open and
// stopped there: elsewhere on the page Escape cancels the run, and closing a
// dialog must never do that.

export class Modal {
  /** dialog: a <dialog>; onDismiss(): Escape or the backdrop closed it (not close()). */
  constructor(dialog, { onDismiss = () => {} } = {}) {
    this.dialog = dialog;
    this.onDismiss = onDismiss;
    this.opener = null;
    // The browser's own close request (Escape) arrives as `cancel`: close our way, focus included.
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      this.dismiss();
    });
    // A click on the dialog box itself is a click on its backdrop (::backdrop belongs to it);
    // inner areas marked data-backdrop count as backdrop too.
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog || e.target?.hasAttribute?.("data-backdrop")) this.dismiss();
    });
    dialog.ownerDocument.defaultView.addEventListener("keydown", (e) => {
      if (!this.isOpen || e.key !== "Escape") return;
      e.preventDefault();
      e.stopImmediatePropagation();
      this.dismiss();
    }, true);
  }

  get isOpen() {
    return this.dialog.open;
  }

  /** Show it modally; opener (default: what has focus now) gets the focus back on close. */
  open(opener = null) {
    this.opener = opener ?? this.dialog.ownerDocument.activeElement;
    if (!this.dialog.open) this.dialog.showModal();
  }

  close() {
    if (!this.dialog.open) return;
    this.dialog.close();
    const opener = this.opener;
    this.opener = null;
    if (opener?.isConnected && typeof opener.focus === "function") opener.focus();
  }

  dismiss() {
    if (!this.dialog.open) return;
    this.close();
    this.onDismiss();
  }
}
