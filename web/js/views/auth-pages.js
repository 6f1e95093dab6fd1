// Signing in and everything around it: log in, register, forgot and reset password, and the
// pages the mails link to (verify the address, confirm an email change).

import { field, h } from "../elements.js";
import { showError, toast } from "../notices.js";
import { navigate } from "../router.js";
import { login, postAuth, register } from "../session.js";

function page(title, ...content) {
  const main = document.getElementById("main");
  const heading = h("h1", {}, title);
  main.replaceChildren(h("section", { class: "auth-card" }, heading, ...content));
  document.title = `${title} · taskgate`;
  return main;
}

function input(name, type, attributes = {}) {
  return h("input", { name, type, required: true, ...attributes });
}

function formError() {
  return h("p", { class: "form-error", role: "alert", hidden: true });
}

/** Submit handler that disables the button while busy and shows the error in the form. */
function submitting(form, errorNode, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    errorNode.hidden = true;
    try {
      await action(new FormData(form));
    } catch (error) {
      errorNode.textContent = error.userMessage ?? String(error);
      errorNode.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export function loginPage(_params, query, { onSignedIn, reason }) {
  const error = formError();
  const notice = reason
    ? h("p", { class: "notice", role: "status" }, reason)
    : null;
  const form = h(
    "form",
    { class: "stack", novalidate: false },
    field("Username or email", input("identifier", "text", { autocomplete: "username" })),
    field("Password", input("password", "password", { autocomplete: "current-password" })),
    error,
    h("button", { type: "submit", class: "primary" }, "Log in"),
  );
  submitting(form, error, async (data) => {
    await login(data.get("identifier").trim(), data.get("password"));
    await onSignedIn(query.get("next"));
  });
  page(
    "Log in",
    notice,
    form,
    h(
      "p",
      { class: "aside" },
      h("a", { href: "/register", "data-link": true }, "Create an account"),
      " · ",
      h("a", { href: "/forgot-password", "data-link": true }, "Forgot your password?"),
    ),
  );
}

export function registerPage(_params, _query, { onSignedIn }) {
  const error = formError();
  const form = h(
    "form",
    { class: "stack" },
    field("Email", input("email", "email", { autocomplete: "email" })),
    field(
      "Username",
      input("username", "text", { autocomplete: "username", minLength: 4, maxLength: 32 }),
      "4–32 letters, digits, _ . or -",
    ),
    field(
      "Password",
      input("password", "password", { autocomplete: "new-password", minLength: 8 }),
      "At least 8 characters",
    ),
    error,
    h("button", { type: "submit", class: "primary" }, "Create account"),
  );
  submitting(form, error, async (data) => {
    const username = data.get("username").trim();
    await register(data.get("email").trim(), username, data.get("password"));
    await login(username, data.get("password"));
    toast("Welcome! We sent you a link to verify your email address.");
    await onSignedIn(null);
  });
  page(
    "Create your account",
    form,
    h("p", { class: "aside" }, "Already have one? ", h("a", { href: "/login", "data-link": true }, "Log in")),
  );
}

export function forgotPasswordPage() {
  const error = formError();
  const done = h("p", { class: "notice", role: "status", hidden: true });
  const form = h(
    "form",
    { class: "stack" },
    field("Email", input("email", "email", { autocomplete: "email" })),
    error,
    h("button", { type: "submit", class: "primary" }, "Send reset link"),
  );
  submitting(form, error, async (data) => {
    const answer = await postAuth("/auth/forgot-password", { email: data.get("email").trim() });
    done.textContent = answer?.detail ?? "If that address has an account, a reset link is on its way.";
    done.hidden = false;
  });
  page("Reset your password", form, done, h("p", { class: "aside" }, h("a", { href: "/login", "data-link": true }, "Back to log in")));
}

export function resetPasswordPage(_params, query) {
  const token = query.get("token") ?? "";
  const error = formError();
  const form = h(
    "form",
    { class: "stack" },
    field(
      "New password",
      input("password", "password", { autocomplete: "new-password", minLength: 8 }),
      "At least 8 characters. Every device will be logged out.",
    ),
    error,
    h("button", { type: "submit", class: "primary" }, "Set new password"),
  );
  submitting(form, error, async (data) => {
    await postAuth("/auth/reset-password", { token, new_password: data.get("password") });
    toast("Password changed. Log in with your new password.");
    await navigate("/login", { replace: true });
  });
  page("Choose a new password", form);
}

function tokenPage(title, path, successText) {
  return async (_params, query) => {
    const status = h("p", { class: "notice", role: "status" }, "Checking your link…");
    page(title, status, h("p", { class: "aside" }, h("a", { href: "/", "data-link": true }, "Go to your boards")));
    try {
      await postAuth(path, { token: query.get("token") ?? "" });
      status.textContent = successText;
      status.classList.add("success");
    } catch (error) {
      status.textContent =
        error.status === 400
          ? "This link is no longer valid: it was already used, has expired, or a newer one was sent."
          : error.userMessage;
      status.classList.add("failure");
      if (error.status !== 400) showError(error);
    }
  };
}

export const verifyEmailPage = tokenPage(
  "Verify your email",
  "/auth/verify-email",
  "Your email address is verified. Thank you!",
);

export const confirmEmailChangePage = tokenPage(
  "Confirm your new email",
  "/auth/confirm-email-change",
  "Your new email address is confirmed.",
);
