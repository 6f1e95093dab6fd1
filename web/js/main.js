// The app's start: pages, the login kept across reloads and tabs (a refresh on load), and what
// happens when the login ends (logged out here, in another tab, everywhere, or expired).

import { api } from "./api.js";
import { h, replaceChildren } from "./elements.js";
import { showError, toast, watchConnection } from "./notices.js";
import { navigate, route, show, startRouter } from "./router.js";
import { isSignedIn, logout, mayHaveLogin, onRateLimited, onSessionEnd, postAuth, refresh, token } from "./session.js";
import {
  confirmEmailChangePage,
  forgotPasswordPage,
  loginPage,
  registerPage,
  resetPasswordPage,
  verifyEmailPage,
} from "./views/auth-pages.js";
import { boardPage } from "./views/board-page.js";
import { devicesPage } from "./views/devices-page.js";

let me = null;
let loginReason = null;

async function loadMe() {
  me = (await api("/auth/me")).data;
  drawNav();
}

function drawNav() {
  const nav = document.getElementById("account-nav");
  if (!me) {
    nav.replaceChildren(
      h("a", { href: "/login", "data-link": true }, "Log in"),
      h("a", { href: "/register", "data-link": true, class: "button-link" }, "Register"),
    );
    return;
  }
  const unverified = me.email_verified
    ? null
    : h(
        "button",
        {
          type: "button",
          class: "link warn",
          title: "Your email address is not verified yet",
          onclick: async () => {
            try {
              await postAuth("/auth/verify-email/request", {}, await token());
              toast(`A new verification link was sent to ${me.email}.`);
            } catch (error) {
              showError(error);
            }
          },
        },
        "Verify email: resend link",
      );
  replaceChildren(
    nav,
    unverified,
    h("a", { href: "/", "data-link": true }, "Boards"),
    h("a", { href: "/devices", "data-link": true }, "Devices"),
    h("span", { class: "who" }, me.username),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          try {
            await logout();
          } catch (error) {
            showError(error);
          }
        },
      },
      "Log out",
    ),
  );
}

/** A page for signed-in users: refresh from the cookie first (a reload, a new tab). */
function signedIn(render) {
  return async (params, query) => {
    if (!isSignedIn()) {
      try {
        if (!mayHaveLogin()) throw new Error("not logged in");
        await refresh();
      } catch (error) {
        if (error.status && error.status !== 401 && error.status !== 403) showError(error);
        const next = encodeURIComponent(location.pathname + location.search);
        await navigate(`/login?next=${next}`, { replace: true });
        return null;
      }
    }
    if (!me) {
      try {
        await loadMe();
      } catch (error) {
        showError(error);
      }
    }
    return render(params, query);
  };
}

/** Log in and register: go straight on when the cookie still holds a login. */
function guestsOnly(render) {
  return async (params, query) => {
    if (!loginReason && !isSignedIn() && mayHaveLogin()) {
      try {
        await refresh();
      } catch {
        // not logged in: show the form
      }
    }
    if (isSignedIn()) return navigate(safeNext(query.get("next")), { replace: true });
    const reason = loginReason;
    loginReason = null;
    drawNav();
    return render(params, query, { reason, onSignedIn });
  };
}

function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

async function onSignedIn(next) {
  await loadMe();
  await navigate(safeNext(next), { replace: true });
}

onSessionEnd((reason) => {
  if (reason === "none") return;
  me = null;
  loginReason =
    reason === "logout" ? "You are logged out." : "Your session has ended. Please log in again.";
  document.querySelectorAll("dialog[open]").forEach((d) => d.close());
  navigate("/login", { replace: true });
});

onRateLimited((error) => toast(`${error.userMessage} Retrying by itself.`, "error"));

route("/", signedIn(boardPage));
route("/boards/:id", signedIn(boardPage));
route("/devices", signedIn(devicesPage));
route("/login", guestsOnly(loginPage));
route("/register", guestsOnly(registerPage));
route("/forgot-password", forgotPasswordPage);
route("/reset-password", resetPasswordPage);
route("/verify-email", verifyEmailPage);
route("/confirm-email-change", confirmEmailChangePage);

watchConnection();
startRouter();
show();
