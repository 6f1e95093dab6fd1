// Client-side pages on real paths (the gateway serves index.html for each one listed in
// gateway/dynamic/web.yml), so mail links such as /verify-email?token=… open the app.

const routes = [];
let current = null;

/** `pattern`: "/devices" or "/boards/:id"; `render(params, query)` draws the page. */
export function route(pattern, render) {
  const names = [];
  const source = pattern.replace(/:([a-z]+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}$`), names, render });
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return show();
}

export async function show() {
  const { pathname, search } = window.location;
  for (const { regex, names, render } of routes) {
    const match = regex.exec(pathname);
    if (!match) continue;
    const params = Object.fromEntries(names.map((name, i) => [name, match[i + 1]]));
    current?.leave?.();
    current = (await render(params, new URLSearchParams(search))) ?? null;
    return;
  }
  current?.leave?.();
  current = null;
  const main = document.getElementById("main");
  main.replaceChildren();
  main.append(Object.assign(document.createElement("h1"), { textContent: "Page not found" }));
}

export function startRouter() {
  window.addEventListener("popstate", show);
  document.addEventListener("click", (event) => {
    const link = event.target.closest?.("a[data-link]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
}
