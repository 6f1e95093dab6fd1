// What the user is told: short toasts, and a banner for lasting states (offline).

import { h } from "./elements.js";

export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  const note = h("div", { class: `toast toast-${kind}` }, message);
  area.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** Tell the user what went wrong with an ApiError (or anything thrown). */
export function showError(error) {
  toast(error?.userMessage ?? error?.message ?? String(error), "error");
}

function banner(message) {
  const node = document.getElementById("banner");
  node.textContent = message ?? "";
  node.hidden = !message;
}

export function watchConnection() {
  const update = () =>
    banner(navigator.onLine ? null : "You are offline. Changes cannot be saved until you reconnect.");
  window.addEventListener("online", () => {
    update();
    toast("Back online.");
  });
  window.addEventListener("offline", update);
  update();
}
