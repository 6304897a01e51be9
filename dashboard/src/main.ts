// The dashboard's shell: sign-in, navigation between the views, sign-out.
//
// Routes are hashes (`#/<view>` or `#/<view>/<id>`, then the view's state as a query:
// `#/overview?range=7d`, urlstate.ts), so a reload or a shared link shows the same view, and no
// key or token ever goes into a URL (the server never even sees the hash). A view is a function that builds its section
// and loads its data, and stops when its AbortSignal fires (the user went elsewhere); adding
// one is adding an entry to VIEWS (and, for the menu, a label).

import "./style.css";
import { Api } from "./api";
import { clear, h, state } from "./dom";
import { overview } from "./views/overview";
import { prompts } from "./views/prompts";
import { properties } from "./views/properties";
import { requestDetail } from "./views/request-detail";
import { initialRequestsState, requests } from "./views/requests";
import { sessionDetail } from "./views/session-detail";
import { sessions } from "./views/sessions";
import { settings } from "./views/settings";
import { signIn } from "./views/signin";
import { sql } from "./views/sql";
import { users } from "./views/users";
import { parseRoute, queryIsState, restoreQuery, splitHash } from "./urlstate";

interface View {
  /** In the menu when set. */
  label?: string;
  title: string;
  /** `id`: the second part of the hash (`#/requests/<id>`), decoded; "" when absent. */
  render: (signal: AbortSignal, id: string) => HTMLElement;
}

const root = document.getElementById("app") as HTMLElement;
const api = new Api();
const requestsState = initialRequestsState();
let current: AbortController | null = null;
/** The query each path had when the user left it: a bare link back to it (the menu,
 *  "← Sessions") shows it as it was left. */
const lastQueries = new Map<string, string>();

const VIEWS: Record<string, View> = {
  overview: { label: "Overview", title: "Overview", render: (signal) => overview(api, signal) },
  requests: {
    label: "Requests",
    title: "Requests",
    render: (signal, id) =>
      id ? requestDetail(api, id, signal) : requests(api, signal, requestsState),
  },
  sessions: {
    label: "Sessions",
    title: "Sessions",
    render: (signal, id) => (id ? sessionDetail(api, id, signal) : sessions(api, signal)),
  },
  users: { label: "Users", title: "Users", render: (signal) => users(api, signal) },
  properties: {
    label: "Properties",
    title: "Properties",
    render: (signal, id) => properties(api, signal, id),
  },
  prompts: { label: "Prompts", title: "Prompts", render: (signal, id) => prompts(api, signal, id) },
  sql: { label: "SQL", title: "SQL", render: (signal) => sql(api, signal) },
  settings: { label: "Settings", title: "Settings", render: (signal) => settings(api, signal) },
};
const DEFAULT_VIEW = "overview";

api.onSignedOut = (message) => showSignIn(message);

function showSignIn(message?: string): void {
  current?.abort();
  window.onhashchange = null;
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
    Object.entries(VIEWS).filter(([, v]) => v.label).map(([name, v]) =>
      h("a", { href: `#/${name}`, "data-view": name }, v.label as string)));
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
  window.onhashchange = (event) => {
    const left = splitHash(new URL(event.oldURL).hash);
    lastQueries.set(left.path, left.query);
    route(main, nav);
    main.focus(); // keyboard and screen-reader users land on the new view
  };
  route(main, nav);
}

function route(main: HTMLElement, nav: HTMLElement): void {
  current?.abort();
  current = new AbortController();
  const route = parseRoute(location.hash);
  const known = Object.hasOwn(VIEWS, route.view);
  const viewName = known ? route.view : DEFAULT_VIEW;
  const view = VIEWS[viewName];
  const id = known ? route.id : "";
  // No view or an unknown one: the default's own URL (a stale query is not its state).
  if (!known) history.replaceState(null, "", `${location.pathname}${location.search}#/${DEFAULT_VIEW}`);
  else if (!queryIsState()) {
    const left = lastQueries.get(splitHash(location.hash).path);
    if (left !== undefined) restoreQuery(left);
  }
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === viewName) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${id ? `${view.title} ${id}` : view.title} · LLM gateway`;
  clear(main, view.render(current.signal, id));
}

// The skip link moves the focus without following its href: "#main" is not a route (it
// would replace the view with the default one).
const skip = document.querySelector<HTMLAnchorElement>(".skip");
if (skip) {
  skip.onclick = (event) => {
    event.preventDefault();
    document.getElementById("main")?.focus();
  };
}
void start();
