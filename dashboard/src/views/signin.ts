// Sign-in with a gateway key. The key goes to the server once, in a POST body; the server
// answers with an HttpOnly session cookie. The key is not kept anywhere in the page.

import { Api } from "../api";
import { h } from "../dom";

export function signIn(api: Api, message: string | undefined, done: () => void): HTMLElement {
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "sk-helicone-…", "aria-describedby": "signin-message",
  });
  const note = h("p", { id: "signin-message", class: "note", role: "status" }, message ?? "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "LLM gateway"),
    h("p", {}, "Sign in with a gateway key that can read the request log."),
    h("label", { for: "key" }, "Gateway key"),
    input,
    button,
    note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    note.textContent = "Signing in…";
    note.className = "note";
    try {
      await api.signIn(input.value);
      input.value = "";
      done();
    } catch (error) {
      note.textContent = (error as Error).message;
      note.className = "note error";
      button.disabled = false;
      input.focus();
    }
  });
  queueMicrotask(() => input.focus());
  return h("main", { id: "main", class: "center", tabindex: "-1" }, form);
}
