// The Kanban board: boards in a sidebar, columns with their cards, drag and drop between
// columns (and a keyboard way: the card's menu, or Alt+←/→), live updates from the stream.

import { api, etagOf } from "../api.js";
import { h, replaceChildren } from "../elements.js";
import { LiveSync } from "../live-sync.js";
import { showError, toast } from "../notices.js";
import { navigate } from "../router.js";
import { openCardDialog } from "./card-dialog.js";
import { askValues } from "./text-dialog.js";

const BOARD_CARDS = 100;

export async function boardPage(params) {
  const main = document.getElementById("main");
  const state = { boards: [], archived: [], board: null, showArchived: false, dragging: null };
  const sidebar = h("nav", { class: "sidebar", "aria-label": "Boards" });
  const content = h("section", { class: "board", "aria-labelledby": "board-title" });
  const liveStatus = h("span", { class: "live-status", role: "status" }, "Connecting…");
  main.replaceChildren(h("div", { class: "board-layout" }, sidebar, content));

  let reloadTimer = null;
  let pending = false;

  async function loadBoards() {
    const [active, archived] = await Promise.all([
      api("/api/boards?archived=false"),
      api("/api/boards?archived=true"),
    ]);
    state.boards = active.data.items;
    state.archived = archived.data.items;
  }

  async function loadBoard() {
    const wanted = params.id ?? state.board?.id;
    const known = [...state.boards, ...state.archived].find((b) => b.id === wanted);
    const target = known ?? state.boards[0] ?? state.archived[0];
    if (!target) {
      state.board = null;
      return;
    }
    const { data } = await api(`/api/boards/${target.id}?limit=${BOARD_CARDS}`);
    state.board = data;
    if (params.id !== data.id) {
      params.id = data.id;
      history.replaceState(null, "", `/boards/${data.id}`);
    }
  }

  async function load() {
    await loadBoards();
    await loadBoard();
    render();
  }

  /** Many changes arrive together (a move touches a card and two columns): one reload. */
  function scheduleReload(boardsToo) {
    pending ||= boardsToo;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(async () => {
      if (state.dragging || document.querySelector("dialog[open]")) return scheduleReload(false);
      const withBoards = pending;
      pending = false;
      try {
        if (withBoards) await loadBoards();
        await loadBoard();
        render();
      } catch (error) {
        if (error.status !== 401) showError(error);
      }
    }, 120);
  }

  function onChange(change) {
    if (change.type === "board") return scheduleReload(true);
    const board = state.board;
    if (!board) return;
    const ours =
      change.data?.board_id === board.id ||
      board.columns.some((c) => c.id === change.id || c.items.some((t) => t.id === change.id));
    if (ours) scheduleReload(false);
  }

  const sync = new LiveSync({
    load,
    onChange,
    onStatus: (status) => {
      liveStatus.textContent = status === "live" ? "Live" : "Reconnecting…";
      liveStatus.dataset.status = status;
    },
  });

  async function act(work, success) {
    try {
      await work();
      if (success) toast(success);
      await loadBoard();
      render();
    } catch (error) {
      if (error.code === "wip_limit_reached") toast("That column is at its WIP limit.", "error");
      else showError(error);
      scheduleReload(true);
    }
  }

  // ---- rendering -------------------------------------------------------------------------

  let drawn = "";
  /** Draw the state; nothing when it is what is already on screen (e.g. the echo of one's own
   * change arriving from the stream), so that nothing the user is doing is disturbed. */
  function render() {
    const snapshot = JSON.stringify([state.boards, state.archived, state.board, state.showArchived]);
    if (snapshot === drawn) return;
    drawn = snapshot;
    renderSidebar();
    renderBoard();
  }

  function boardLink(board) {
    const current = state.board?.id === board.id;
    const link = h(
      "a",
      { href: `/boards/${board.id}`, "data-link": true, "aria-current": current ? "page" : false, class: current ? "current" : "" },
      board.name,
    );
    if (!current && !board.archived) {
      // A card dropped on another board goes there (into its column of the card's status).
      link.addEventListener("dragover", (event) => {
        if (!state.dragging) return;
        event.preventDefault();
        link.classList.add("drop-target");
      });
      link.addEventListener("dragleave", () => link.classList.remove("drop-target"));
      link.addEventListener("drop", (event) => {
        event.preventDefault();
        link.classList.remove("drop-target");
        const task = findTask(event.dataTransfer.getData("text/plain") || state.dragging);
        state.dragging = null;
        if (task) moveTo(task, { board_id: board.id, status: task.status }, `Moved to board “${board.name}”.`);
      });
    }
    return h("li", {}, link);
  }

  function renderSidebar() {
    const newBoard = h("input", { name: "name", required: true, maxLength: 100, placeholder: "New board", "aria-label": "New board name", dataset: { key: "new-board" } });
    const form = h("form", { class: "inline-form" }, newBoard, h("button", { type: "submit", class: "secondary" }, "Create"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = newBoard.value.trim();
      if (!name) return;
      newBoard.value = "";
      act(async () => {
        const { data } = await api("/api/boards", { method: "POST", body: { name } });
        await loadBoards();
        params.id = data.id;
        history.pushState(null, "", `/boards/${data.id}`);
      }, `Board “${name}” created.`);
    });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "link",
        "aria-expanded": String(state.showArchived),
        onclick: () => {
          state.showArchived = !state.showArchived;
          render();
        },
      },
      state.showArchived ? "Hide archived boards" : `Archived boards (${state.archived.length})`,
    );
    replaceChildren(
      sidebar,
      h("h2", { class: "sidebar-title" }, "Boards"),
      h("ul", { class: "board-list" }, state.boards.map(boardLink)),
      form,
      state.archived.length ? toggle : null,
      state.showArchived ? h("ul", { class: "board-list archived", "aria-label": "Archived boards" }, state.archived.map(boardLink)) : null,
    );
  }

  function renderBoard() {
    const board = state.board;
    if (!board) {
      replaceChildren(content, h("h1", { id: "board-title" }, "No boards yet"), h("p", {}, "Create one in the list of boards."));
      return;
    }
    document.title = `${board.name} · taskgate`;
    const header = h(
      "header",
      { class: "board-header" },
      h("h1", { id: "board-title" }, board.name),
      board.archived ? h("span", { class: "badge" }, "Archived") : null,
      liveStatus,
      h(
        "div",
        { class: "board-actions" },
        h("button", { type: "button", class: "secondary", onclick: renameBoard }, "Rename board"),
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => archiveBoard(!board.archived) },
          board.archived ? "Restore board" : "Archive board",
        ),
      ),
    );
    const columns = h("div", { class: "columns" }, board.columns.map(renderColumn), addColumnForm());
    replaceChildren(content, header, columns);
  }

  function addColumnForm() {
    const name = h("input", { name: "name", required: true, maxLength: 100, placeholder: "Column name", "aria-label": "New column name", dataset: { key: "new-column" } });
    const limit = h("input", { name: "wip", type: "number", min: 1, max: 1000, placeholder: "WIP", "aria-label": "WIP limit of the new column (optional)", dataset: { key: "new-column-wip" } });
    const form = h("form", { class: "add-column" }, h("h2", {}, "Add a column"), name, limit, h("button", { type: "submit", class: "secondary" }, "Add column"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = { name: name.value.trim() };
      if (limit.value) body.wip_limit = Number(limit.value);
      name.value = limit.value = "";
      act(() => api(`/api/boards/${state.board.id}/columns`, { method: "POST", body }), `Column “${body.name}” added.`);
    });
    return form;
  }

  function renderColumn(column) {
    const full = column.wip_limit !== null && column.total >= column.wip_limit;
    const count = column.wip_limit === null ? `${column.total}` : `${column.total} / ${column.wip_limit}`;
    const countLabel =
      column.wip_limit === null
        ? `${column.total} cards`
        : `${column.total} cards, WIP limit ${column.wip_limit}${full ? ", full" : ""}`;
    const list = h("ol", { class: "cards", dataset: { columnId: column.id }, "aria-label": `Cards in ${column.name}` }, column.items.map((task, i) => renderCard(task, column, i)));
    list.addEventListener("dragover", (event) => dragOver(event, list));
    list.addEventListener("dragleave", () => clearDropMarks());
    list.addEventListener("drop", (event) => drop(event, list, column));
    const newCard = h("input", { name: "title", required: true, maxLength: 200, placeholder: "Add a card", "aria-label": `New card in ${column.name}`, dataset: { key: `new-card-${column.id}` } });
    const form = h("form", { class: "add-card" }, newCard, h("button", { type: "submit", class: "secondary", "aria-label": `Add card to ${column.name}` }, "Add"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const title = newCard.value.trim();
      if (!title) return;
      newCard.value = "";
      act(() => api("/api/tasks", { method: "POST", body: { title, board_id: state.board.id, column_id: column.id } }));
    });
    return h(
      "section",
      { class: `column${full ? " full" : ""}`, "aria-labelledby": `col-${column.id}`, dataset: { columnId: column.id } },
      h(
        "header",
        { class: "column-header" },
        h("h2", { id: `col-${column.id}` }, column.name),
        h("span", { class: "count", title: countLabel }, h("span", { "aria-hidden": "true" }, count), h("span", { class: "visually-hidden" }, countLabel)),
        h("button", { type: "button", class: "icon", "aria-label": `Edit column ${column.name}`, onclick: () => editColumn(column), dataset: { key: `col-edit-${column.id}` } }, "✎"),
        columnMenu(column),
      ),
      list,
      form,
    );
  }

  function columnMenu(column) {
    const columns = state.board.columns;
    const at = columns.findIndex((c) => c.id === column.id);
    const move = (body) => act(() => api(`/api/columns/${column.id}/move`, { method: "POST", body }));
    return h(
      "details",
      { class: "card-menu" },
      h("summary", { "aria-label": `Move or delete column ${column.name}`, dataset: { key: `col-menu-${column.id}` } }, "⋯"),
      h(
        "div",
        { class: "menu", role: "group", "aria-label": `Actions for column ${column.name}` },
        at > 0 ? h("button", { type: "button", onclick: () => move({ before_id: columns[at - 1].id }) }, "Move left") : null,
        at < columns.length - 1 ? h("button", { type: "button", onclick: () => move({ after_id: columns[at + 1].id }) }, "Move right") : null,
        h("button", { type: "button", class: "danger-text", onclick: () => deleteColumn(column) }, "Delete column"),
      ),
    );
  }

  function deleteColumn(column) {
    const others = state.board.columns.filter((c) => c.id !== column.id);
    const target = others[0];
    const question = column.total && target
      ? `Delete column “${column.name}”? Its ${column.total} cards move to “${target.name}”.`
      : `Delete column “${column.name}”?`;
    if (!confirm(question)) return;
    const query = column.total && target ? `?move_to=${target.id}` : "";
    act(() => api(`/api/columns/${column.id}${query}`, { method: "DELETE", ifMatch: etagOf(column.version) }), "Column deleted.");
  }

  function renderCard(task, column, index) {
    const doneItems = task.checklist.filter((i) => i.done).length;
    const others = state.board.columns.filter((c) => c.id !== column.id);
    const menu = h(
      "details",
      { class: "card-menu" },
      h("summary", { "aria-label": `Move or delete “${task.title}”`, dataset: { key: `menu-${task.id}` } }, "⋯"),
      h(
        "div",
        { class: "menu", role: "group", "aria-label": `Actions for ${task.title}` },
        others.map((target) =>
          h("button", { type: "button", onclick: () => moveTo(task, { column_id: target.id }) }, `Move to ${target.name}`),
        ),
        index > 0 ? h("button", { type: "button", onclick: () => moveTo(task, { before_id: column.items[index - 1].id }) }, "Move up") : null,
        index < column.items.length - 1
          ? h("button", { type: "button", onclick: () => moveTo(task, { after_id: column.items[index + 1].id }) }, "Move down")
          : null,
        state.boards
          .filter((b) => b.id !== state.board.id)
          .map((b) =>
            h("button", { type: "button", onclick: () => moveTo(task, { board_id: b.id, status: task.status }, `Moved to board “${b.name}”.`) }, `Move to board ${b.name}`),
          ),
        h("button", { type: "button", class: "danger-text", onclick: () => deleteCard(task) }, "Delete"),
      ),
    );
    const title = h(
      "button",
      {
        type: "button",
        class: "card-title",
        dataset: { key: `card-${task.id}` },
        "aria-keyshortcuts": "Alt+ArrowLeft Alt+ArrowRight",
        onclick: () => openCardDialog(task, { onDone: () => scheduleReload(false) }),
        onkeydown: (event) => {
          if (!event.altKey || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
          event.preventDefault();
          const columns = state.board.columns;
          const at = columns.findIndex((c) => c.id === column.id) + (event.key === "ArrowLeft" ? -1 : 1);
          if (columns[at]) moveTo(task, { column_id: columns[at].id });
        },
      },
      task.title,
    );
    const card = h(
      "li",
      { class: `card${task.completed ? " completed" : ""}`, draggable: "true", dataset: { taskId: task.id } },
      h(
        "div",
        { class: "card-top" },
        h("input", {
          type: "checkbox",
          checked: task.completed,
          "aria-label": `Complete “${task.title}”`,
          dataset: { key: `done-${task.id}` },
          onchange: () => act(() => api(`/api/tasks/${task.id}/complete`, { method: "PATCH", ifMatch: etagOf(task.version) })),
        }),
        title,
        menu,
      ),
      task.description ? h("p", { class: "card-description" }, task.description) : null,
      h(
        "div",
        { class: "card-meta" },
        task.labels.map((label) => h("span", { class: "label" }, label)),
        task.due_at ? h("span", { class: "due" }, `Due ${task.due_at.slice(0, 10)}`) : null,
        task.checklist.length
          ? h("span", { class: "checks" }, h("span", { "aria-hidden": "true" }, `☑ ${doneItems}/${task.checklist.length}`), h("span", { class: "visually-hidden" }, `Checklist ${doneItems} of ${task.checklist.length} done`))
          : null,
      ),
    );
    card.addEventListener("dragstart", (event) => {
      state.dragging = task.id;
      event.dataTransfer.setData("text/plain", task.id);
      event.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", () => {
      state.dragging = null;
      card.classList.remove("dragging");
      clearDropMarks();
    });
    return card;
  }

  // ---- drag and drop ---------------------------------------------------------------------

  function anchorIn(list, y) {
    const cards = [...list.querySelectorAll(".card:not(.dragging)")];
    return cards.find((card) => {
      const box = card.getBoundingClientRect();
      return y < box.top + box.height / 2;
    });
  }

  function clearDropMarks() {
    main.querySelectorAll(".drop-before, .drop-target").forEach((n) => n.classList.remove("drop-before", "drop-target"));
  }

  function dragOver(event, list) {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    clearDropMarks();
    list.classList.add("drop-target");
    anchorIn(list, event.clientY)?.classList.add("drop-before");
  }

  function drop(event, list, column) {
    event.preventDefault();
    const id = event.dataTransfer.getData("text/plain") || state.dragging;
    const anchor = anchorIn(list, event.clientY);
    clearDropMarks();
    state.dragging = null;
    if (!id) return;
    const body = { column_id: column.id };
    if (anchor && anchor.dataset.taskId !== id) body.before_id = anchor.dataset.taskId;
    const task = findTask(id);
    if (task) moveTo(task, body);
  }

  function findTask(id) {
    for (const column of state.board.columns) {
      const task = column.items.find((t) => t.id === id);
      if (task) return task;
    }
    return null;
  }

  // ---- actions ---------------------------------------------------------------------------

  function moveTo(task, body, success) {
    return act(() => api(`/api/tasks/${task.id}/move`, { method: "POST", body, ifMatch: etagOf(task.version) }), success);
  }

  function deleteCard(task) {
    if (!confirm(`Delete “${task.title}”?`)) return;
    act(() => api(`/api/tasks/${task.id}`, { method: "DELETE", ifMatch: etagOf(task.version) }), "Card deleted.");
  }

  async function renameBoard() {
    const board = state.board;
    const values = await askValues("Rename board", [{ name: "name", label: "Board name", value: board.name, maxLength: 100 }]);
    if (!values) return;
    act(async () => {
      await api(`/api/boards/${board.id}`, { method: "PATCH", body: { name: values.name.trim() }, ifMatch: etagOf(board.version) });
      await loadBoards();
    }, "Board renamed.");
  }

  function archiveBoard(archived) {
    const board = state.board;
    act(async () => {
      await api(`/api/boards/${board.id}`, { method: "PATCH", body: { archived }, ifMatch: etagOf(board.version) });
      await loadBoards();
    }, archived ? "Board archived." : "Board restored.");
  }

  async function editColumn(column) {
    const values = await askValues(`Edit column ${column.name}`, [
      { name: "name", label: "Column name", value: column.name, maxLength: 100 },
      { name: "wip", label: "WIP limit", type: "number", min: 1, max: 1000, required: false, value: column.wip_limit ?? "", hint: "Leave empty for no limit" },
    ]);
    if (!values) return;
    const body = { name: values.name.trim(), wip_limit: values.wip ? Number(values.wip) : null };
    act(() => api(`/api/columns/${column.id}`, { method: "PATCH", body, ifMatch: etagOf(column.version) }), "Column saved.");
  }

  try {
    await sync.start();
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
  return {
    leave() {
      sync.stop();
      clearTimeout(reloadTimer);
    },
  };
}

export const goToBoards = () => navigate("/");
