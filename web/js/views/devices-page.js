// The user's logins ("devices"): see them, end one, or log out everywhere.

import { api } from "../api.js";
import { h, replaceChildren } from "../elements.js";
import { showError, toast } from "../notices.js";
import { logout, logoutEverywhere } from "../session.js";

const when = (iso) => new Date(iso).toLocaleString();

export async function devicesPage() {
  const main = document.getElementById("main");
  document.title = "Devices · taskgate";
  const list = h("ul", { class: "device-list", "aria-label": "Logged-in devices" });
  const everywhere = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        if (!confirm("Log out on every device, this one included?")) return;
        try {
          await logoutEverywhere();
        } catch (error) {
          showError(error);
        }
      },
    },
    "Log out everywhere",
  );
  main.replaceChildren(
    h(
      "section",
      { class: "page" },
      h("h1", {}, "Devices"),
      h("p", { class: "aside" }, "Every browser or app where you are logged in. End any you do not recognise."),
      list,
      everywhere,
    ),
  );

  async function load() {
    try {
      const { data } = await api("/auth/sessions?limit=100");
      replaceChildren(list, data.items.map(item));
    } catch (error) {
      showError(error);
    }
  }

  function item(session) {
    const end = h(
      "button",
      {
        type: "button",
        class: "secondary",
        "aria-label": `End the session on ${session.device}${session.current ? " (this device)" : ""}`,
        onclick: async () => {
          try {
            await api(`/auth/sessions/${session.id}`, { method: "DELETE" });
            if (session.current) {
              await logout(); // this device's login is over: clear the cookie and show the login
              return;
            }
            toast("Session ended.");
            await load();
          } catch (error) {
            showError(error);
          }
        },
      },
      "End session",
    );
    return h(
      "li",
      { class: "device" },
      h(
        "div",
        {},
        h("strong", {}, session.device || "Unknown device"),
        session.current ? h("span", { class: "badge" }, "This device") : null,
        h("p", { class: "meta" }, `Last used ${when(session.last_used_at)} · from ${session.client_address ?? "unknown"} · since ${when(session.created_at)}`),
      ),
      end,
    );
  }

  await load();
}
