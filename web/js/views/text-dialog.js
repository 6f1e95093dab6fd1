// A small modal asking for one or two values (rename a board or a column, set a WIP limit):
// a native <dialog>, so focus is trapped and Escape cancels.

import { field, h } from "../elements.js";

/** Resolves to the submitted values ({name: value}) or null when cancelled. */
export function askValues(title, inputs) {
  return new Promise((resolve) => {
    const controls = inputs.map(({ name, label, value = "", type = "text", required = true, hint, ...rest }) =>
      field(label, h("input", { name, type, value, required, ...rest }), hint),
    );
    const form = h(
      "form",
      { class: "stack", method: "dialog" },
      controls,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, "Save"),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
      ),
    );
    const heading = h("h2", { id: "text-dialog-title" }, title);
    const dialog = h("dialog", { class: "small-dialog", "aria-labelledby": "text-dialog-title" }, heading, form);
    let result = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      result = Object.fromEntries(new FormData(form));
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    form.querySelector("input")?.select();
  });
}
