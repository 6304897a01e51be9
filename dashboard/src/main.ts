// The dashboard's shell: sign-in, navigation between the views (hash routes, so a reload
// keeps the view; no key or token ever goes into the URL), sign-out.

import "./style.css";
import { Api } from "./api";
import { clear, h, state } from "./dom";
import { overview } from "./views/overview";
import { requestDetail } from "./views/request-detail";
import { initialRequestsState, requests } from "./views/requests";
import { signIn } from "./views/signin";

const root = document.getElementById("app") as HTMLElement;
const api = new Api();
let current: AbortController | null = null;
const requestsState = initialRequestsState();

api.onSignedOut = (message) => showSignIn(message);

interface Route {
  name: string;
  label: string;
  hash: string;
}
const NAV: Route[] = [
  { name: "overview", label: "Overview", hash: "#/overview" },
  { name: "requests", label: "Requests", hash: "#/requests" },
];

function showSignIn(message?: string): void {
  current?.abort();
  document.title = "Sign in · LLM gateway";
  clear(root, signIn(api, message, () => void start()));
}

async function start(): Promise<void> {
  let info;
  try {
    info = await api.session();
  } catch (error) {
    clear(root, state("error", `The gateway did not answer: ${(error as Error).message}`));
    return;
  }
  if (info === null) {
    showSignIn();
    return;
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  const nav = h("nav", { "aria-label": "Views" },
    NAV.map((r) => h("a", { href: r.hash, "data-view": r.name }, r.label)));
  const signOut = h("button", { type: "button", class: "quiet", onclick: async () => {
    await api.signOut();
    showSignIn("Signed out.");
  } }, "Sign out");
  const header = h("header", { class: "top" },
    h("span", { class: "brand" }, "LLM gateway"),
    nav,
    h("span", { class: "org", title: `key ${info.key_id}` }, info.org_name),
    signOut);
  clear(root, header, main);
  window.onhashchange = () => {
    route(main, nav);
    main.focus(); // keyboard and screen-reader users land on the new view
  };
  route(main, nav);
}

function route(main: HTMLElement, nav: HTMLElement): void {
  current?.abort();
  current = new AbortController();
  const hash = location.hash || "#/overview";
  const [, view = "overview", id] = hash.split("/");
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const signal = current.signal;
  if (view === "requests" && id) {
    document.title = "Request · LLM gateway";
    clear(main, requestDetail(api, decodeURIComponent(id), signal));
  } else if (view === "requests") {
    document.title = "Requests · LLM gateway";
    clear(main, requests(api, signal, requestsState));
  } else {
    document.title = "Overview · LLM gateway";
    clear(main, overview(api, signal));
  }
}

void start();
