// Building DOM nodes without innerHTML (so no user text is ever parsed as markup).

/** h("button", {class: "x", onclick: fn, "aria-label": "…"}, "text", child, …) */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name in node && !name.includes("-") && name !== "list" && name !== "form") {
      node[name] = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace `node`'s children, keeping what the user is in the middle of: keyboard focus and
 * the text typed so far in fields, matched by their data-key. */
export function replaceChildren(node, ...children) {
  const focused = document.activeElement?.closest?.("[data-key]");
  const key = focused && node.contains(focused) ? focused.dataset.key : null;
  const typed = new Map(
    [...node.querySelectorAll("input[data-key]:not([type=checkbox]), textarea[data-key]")]
      .filter((input) => input.value)
      .map((input) => [input.dataset.key, input.value]),
  );
  node.replaceChildren();
  append(node, children);
  for (const [name, value] of typed) {
    const input = node.querySelector(`[data-key="${CSS.escape(name)}"]`);
    if (input && !input.value) input.value = value;
  }
  if (key) node.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

/** A labelled form field: <label for=id>text</label><input id=id …>. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintNode = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) input.setAttribute("aria-describedby", hintNode.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintNode);
}
