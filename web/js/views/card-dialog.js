// Editing a card in a dialog: title, description, due date, labels and checklist. The save
// sends If-Match with the version the edit started from; a 412 shows what changed meanwhile
// and lets the user keep theirs or take the server's.

import { api, etagOf } from "../api.js";
import { field, h, replaceChildren } from "../elements.js";
import { showError, toast } from "../notices.js";

const FIELDS = [
  ["title", "Title"],
  ["description", "Description"],
  ["due_at", "Due date"],
  ["labels", "Labels"],
  ["checklist", "Checklist"],
];

const dueDate = (iso) => (iso ? iso.slice(0, 10) : "");
const dueAt = (date) => (date ? `${date}T12:00:00Z` : null);

function shown(name, value) {
  if (name === "due_at") return dueDate(value) || "none";
  if (name === "labels") return value.length ? value.join(", ") : "none";
  if (name === "checklist") {
    return value.length ? value.map((i) => `${i.done ? "☑" : "☐"} ${i.text}`).join("; ") : "none";
  }
  return value || "(empty)";
}

function same(name, a, b) {
  if (name === "due_at") return dueDate(a) === dueDate(b);
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Open the editor for `task`; `onDone` runs after a save or delete. */
export function openCardDialog(task, { onDone = () => {} } = {}) {
  let base = task;
  let checklist = task.checklist.map((item) => ({ ...item }));
  const title = h("input", { name: "title", required: true, maxLength: 200, value: task.title });
  const description = h("textarea", { name: "description", rows: 4, maxLength: 10000 }, task.description);
  const due = h("input", { name: "due", type: "date", value: dueDate(task.due_at) });
  const labels = h("input", { name: "labels", value: task.labels.join(", ") });
  const items = h("ul", { class: "checklist-edit", "aria-label": "Checklist items" });
  const newItem = h("input", { "aria-label": "New checklist item", placeholder: "Add an item", maxLength: 200 });
  const conflict = h("section", { class: "conflict", role: "alert", hidden: true });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });

  function drawChecklist() {
    replaceChildren(
      items,
      checklist.map((item, index) =>
        h(
          "li",
          {},
          h("input", {
            type: "checkbox",
            checked: item.done,
            "aria-label": `Done: ${item.text}`,
            onchange: (event) => {
              item.done = event.target.checked;
            },
          }),
          h("span", {}, item.text),
          h(
            "button",
            {
              type: "button",
              class: "icon",
              "aria-label": `Remove checklist item ${item.text}`,
              onclick: () => {
                checklist.splice(index, 1);
                drawChecklist();
              },
            },
            "×",
          ),
        ),
      ),
    );
  }
  drawChecklist();

  const addItem = () => {
    const text = newItem.value.trim();
    if (!text) return;
    checklist.push({ text, done: false });
    newItem.value = "";
    drawChecklist();
  };
  newItem.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addItem();
    }
  });

  const mine = () => ({
    title: title.value.trim(),
    description: description.value,
    due_at: dueAt(due.value),
    labels: labels.value.split(",").map((l) => l.trim()).filter(Boolean),
    checklist: checklist.map(({ text, done }) => ({ text, done })),
  });

  function fill(values) {
    title.value = values.title;
    description.value = values.description;
    due.value = dueDate(values.due_at);
    labels.value = values.labels.join(", ");
    checklist = values.checklist.map((item) => ({ ...item }));
    drawChecklist();
  }

  async function save(changes, version) {
    const { data } = await api(`/api/tasks/${task.id}`, {
      method: "PATCH",
      body: changes,
      ifMatch: etagOf(version),
    });
    return data;
  }

  async function showConflict(changes) {
    const { data: theirs } = await api(`/api/tasks/${task.id}`);
    const rows = FIELDS.filter(([name]) => !same(name, changes[name], theirs[name])).map(([name, label]) =>
      h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, shown(name, changes[name])), h("td", {}, shown(name, theirs[name]))),
    );
    replaceChildren(
      conflict,
      h("h3", {}, "This card was changed somewhere else"),
      h("p", {}, "While you were editing, another tab or device saved a change. Choose which version to keep."),
      rows.length
        ? h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Yours"), h("th", { scope: "col" }, "Theirs"))), h("tbody", {}, rows))
        : h("p", {}, "Their change touched nothing you edited."),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "primary",
            onclick: async () => {
              try {
                await save(changes, theirs.version);
                toast("Saved your version.");
                dialog.close();
                onDone();
              } catch (err) {
                if (err.status === 412) showConflict(changes);
                else showError(err);
              }
            },
          },
          "Keep mine",
        ),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              base = theirs;
              fill(theirs);
              conflict.hidden = true;
              toast("Took the other version.");
              dialog.close();
              onDone();
            },
          },
          "Take theirs",
        ),
      ),
    );
    conflict.hidden = false;
    conflict.querySelector("button")?.focus();
  }

  const form = h(
    "form",
    { class: "stack", method: "dialog" },
    field("Title", title),
    field("Description", description),
    h("div", { class: "row" }, field("Due date", due), field("Labels", labels, "Separate with commas")),
    h("fieldset", {}, h("legend", {}, "Checklist"), items, h("div", { class: "row" }, newItem, h("button", { type: "button", class: "secondary", onclick: addItem }, "Add item"))),
    conflict,
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Save"),
      h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
      h(
        "button",
        {
          type: "button",
          class: "danger push",
          onclick: async () => {
            if (!confirm(`Delete “${task.title}”?`)) return;
            try {
              await api(`/api/tasks/${task.id}`, { method: "DELETE", ifMatch: etagOf(base.version) });
              toast("Card deleted.");
              dialog.close();
              onDone();
            } catch (err) {
              if (err.status === 412) showConflict(mine());
              else showError(err);
            }
          },
        },
        "Delete",
      ),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const changes = mine();
    try {
      base = await save(changes, base.version);
      dialog.close();
      onDone();
    } catch (err) {
      if (err.status === 412) await showConflict(changes);
      else {
        error.textContent = err.userMessage ?? String(err);
        error.hidden = false;
      }
    }
  });

  const heading = h("h2", { id: "card-dialog-title" }, "Edit card");
  const dialog = h("dialog", { class: "card-dialog", "aria-labelledby": "card-dialog-title" }, heading, form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  title.focus();
  return dialog;
}
