// One session (GET /v1/session/{id}/trace): its totals, the tree of its paths
// (Helicone-Session-Path, "/plan/flights" under "/plan"; each node with its subtree's totals)
// and a timeline of its requests by path, each bar from the request's start to its end on the
// session's clock, each row linking to the request's page.
//
// The tree follows the WAI-ARIA tree pattern: one tab stop, arrows move, Right/Left open and
// close, Home/End jump; Enter or a click selects a path and narrows the timeline to it.

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { currentQuery, writeQuery } from "../urlstate";
import { statusBadge } from "./requests";
import { span } from "./shared";

interface Stats {
  requests: number; errors: number; cost: number; cost_complete: boolean; prompt_tokens: number;
  completion_tokens: number; total_tokens: number; avg_latency_ms: number | null;
  start: string | null; end: string | null; duration_ms: number | null;
}
interface TraceNode {
  path: string; name: string; depth: number; request_ids: string[]; own: Stats; totals: Stats;
  children: TraceNode[];
}
interface TraceRequest {
  request_id: string; path: string; path_segments: string[]; created_at: string; end: string;
  model: string; status: number; error: boolean; latency_ms: number | null; cost: number | null;
  total_tokens: number | null; user_id: string | null; cached: boolean;
}
interface Trace {
  session_id: string; session_name: string; created_at: string; latest_request_created_at: string;
  truncated: boolean; totals: Stats; requests: TraceRequest[]; tree: TraceNode;
}

export function sessionDetail(api: Api, id: string, signal: AbortSignal): HTMLElement {
  const body = h("div", {}, state("loading", "Loading the session…"));
  const title = h("h1", { id: "session-title" }, "Session");
  const section = h("section", { class: "view", "aria-labelledby": "session-title" },
    h("div", { class: "toolbar" }, h("a", { href: "#/sessions", class: "back" }, "← Sessions"), title),
    body);
  api.get<Trace>(`/v1/session/${encodeURIComponent(id)}/trace`, signal).then(
    (trace) => {
      if (signal.aborted) return;
      title.textContent = `Session ${trace.session_name || trace.session_id}`;
      render(body, trace, signal);
    },
    (error: Error) => {
      if (!signal.aborted) clear(body, state("error", `Could not load session ${id}: ${error.message}`));
    });
  return section;
}

function cost(stats: Stats): string {
  return fmt.usd(stats.cost) + (stats.cost_complete ? "" : " (some prices unknown)");
}

function render(body: HTMLElement, trace: Trace, signal: AbortSignal): void {
  const t = trace.totals;
  const facts: [string, string | Node][] = [
    ["Session id", h("code", {}, trace.session_id)],
    ["Name", trace.session_name || "–"],
    ["Started", fmt.dateTime(t.start)],
    ["Length", span(t.duration_ms)],
    ["Requests", `${fmt.count(t.requests)}${t.errors ? ` (${fmt.count(t.errors)} failed)` : ""}`],
    ["Cost", cost(t)],
    ["Tokens", `${fmt.count(t.prompt_tokens)} in · ${fmt.count(t.completion_tokens)} out · ${fmt.count(t.total_tokens)} total`],
    ["Avg latency", fmt.ms(t.avg_latency_ms)],
  ];
  const timeline = h("div", { class: "timeline-body" });
  const showAll = h("button", { type: "button", id: "trace-show-all", hidden: true }, "Show every path");
  let selected = "";
  const select = (path: string) => {
    selected = path;
    writeQuery({ path: path || null }, "replace", signal); // `#/sessions/<id>?path=/agent/research`
    for (const item of tree.querySelectorAll<HTMLElement>("[role=treeitem]")) {
      item.setAttribute("aria-selected", String(item.dataset.path === path));
    }
    showAll.hidden = path === "";
    waterfall(timeline, trace, path);
  };
  showAll.addEventListener("click", () => select(""));
  // Requests without a path sit at the root: a "/" item of their own (its own numbers, not
  // the session's) before the top-level paths.
  const roots = trace.tree.request_ids.length
    ? [{ ...trace.tree, name: "/", totals: trace.tree.own, children: [] }, ...trace.tree.children]
    : trace.tree.children;
  const tree = h("ul", { role: "tree", class: "trace-tree", "aria-label": "Session paths" },
    roots.map((node) => treeItem(node, 1, (path) => select(path === selected ? "" : path))));
  const first = tree.querySelector<HTMLElement>("[role=treeitem]");
  if (first) first.tabIndex = 0;
  tree.addEventListener("keydown", (e) => treeKeys(tree, e, (path) => select(path)));
  clear(body,
    trace.truncated ? state("error", "This session is longer than the trace shows: its first 10,000 requests only.")
      : null,
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("section", { class: "panel" }, h("h2", {}, "Trace"),
      h("p", { class: "muted note" }, "Paths (Helicone-Session-Path) with the totals of everything under them. "
        + "Arrow keys move and open; Enter shows one path's requests below."),
      tree),
    h("section", { class: "panel" }, h("div", { class: "toolbar" }, h("h2", {}, "Timeline"), showAll), timeline));
  // The path in the URL, when the session has it (a stale one shows every path).
  const wanted = currentQuery().get("path") ?? "";
  const known = [...tree.querySelectorAll<HTMLElement>("[role=treeitem]")].some((i) => i.dataset.path === wanted);
  select(wanted && known ? wanted : "");
}

function treeItem(node: TraceNode, level: number, onSelect: (path: string) => void): HTMLElement {
  const s = node.totals;
  const label = h("div", { class: "node" },
    h("span", { class: "node-name" }, node.name || "/"),
    h("span", { class: "node-stats muted" },
      `${fmt.count(s.requests)} ${s.requests === 1 ? "request" : "requests"}`,
      s.errors ? ` · ${fmt.count(s.errors)} failed` : "",
      ` · ${fmt.usd(s.cost)} · ${fmt.count(s.total_tokens)} tokens · ${span(s.duration_ms)}`));
  const item = h("li", { role: "treeitem", "aria-level": level, "aria-selected": "false", tabindex: "-1",
    "data-path": node.path, "data-requests": s.requests });
  item.append(label);
  label.addEventListener("click", (e) => {
    e.stopPropagation();
    item.focus();
    onSelect(node.path);
  });
  if (node.children.length) {
    item.setAttribute("aria-expanded", "true");
    const toggle = h("button", { type: "button", class: "twisty", tabindex: "-1", "aria-hidden": "true",
      onclick: (e: Event) => { e.stopPropagation(); toggleItem(item); } }, "▾");
    label.prepend(toggle);
    item.append(h("ul", { role: "group" }, node.children.map((c) => treeItem(c, level + 1, onSelect))));
  } else {
    label.prepend(h("span", { class: "twisty", "aria-hidden": "true" })); // keeps names aligned
  }
  return item;
}

function toggleItem(item: HTMLElement, open?: boolean): void {
  const expanded = open ?? item.getAttribute("aria-expanded") !== "true";
  item.setAttribute("aria-expanded", String(expanded));
  const twisty = item.querySelector(":scope > .node > .twisty");
  if (twisty) twisty.textContent = expanded ? "▾" : "▸";
}

/** The items a reader can reach: those not inside a closed item. */
function visibleItems(tree: HTMLElement): HTMLElement[] {
  return [...tree.querySelectorAll<HTMLElement>("[role=treeitem]")].filter((item) => {
    const closed = item.parentElement?.closest("[role=treeitem][aria-expanded=false]");
    return !closed;
  });
}

function treeKeys(tree: HTMLElement, e: KeyboardEvent, onSelect: (path: string) => void): void {
  const item = (e.target as HTMLElement).closest<HTMLElement>("[role=treeitem]");
  if (!item) return;
  const items = visibleItems(tree);
  const index = items.indexOf(item);
  const move = (to: HTMLElement | undefined | null) => {
    if (!to) return;
    item.tabIndex = -1;
    to.tabIndex = 0;
    to.focus();
  };
  const expanded = item.getAttribute("aria-expanded");
  switch (e.key) {
    case "ArrowDown": move(items[index + 1]); break;
    case "ArrowUp": move(items[index - 1]); break;
    case "Home": move(items[0]); break;
    case "End": move(items[items.length - 1]); break;
    case "ArrowRight":
      if (expanded === "false") toggleItem(item, true);
      else if (expanded === "true") move(item.querySelector<HTMLElement>("[role=treeitem]"));
      break;
    case "ArrowLeft":
      if (expanded === "true") toggleItem(item, false);
      else move(item.parentElement?.closest<HTMLElement>("[role=treeitem]"));
      break;
    case "Enter":
    case " ":
      onSelect(item.dataset.path ?? "");
      break;
    default:
      return;
  }
  e.preventDefault();
}

/** The requests under `prefix` ("" = all) as bars on the session's clock, in path order. */
function waterfall(box: HTMLElement, trace: Trace, prefix: string): void {
  const start = Date.parse(trace.totals.start ?? trace.created_at);
  const total = Math.max(Date.parse(trace.totals.end ?? trace.latest_request_created_at) - start, 1);
  const under = (path: string) => prefix === "" || path === prefix || path.startsWith(`${prefix}/`);
  const rows = trace.requests.filter((r) => under(r.path));
  if (rows.length === 0) {
    clear(box, state("empty", `No requests at ${prefix}.`));
    return;
  }
  const axis = h("div", { class: "wf-row wf-axis", "aria-hidden": "true" },
    h("span", {}, "Path"), h("span", {}, "Model"), h("span", { class: "num" }, "Latency"),
    h("span", { class: "wf-scale" }, h("span", {}, "0"), h("span", {}, span(total))));
  clear(box, axis, h("ol", { class: "waterfall", "aria-label": prefix ? `Requests under ${prefix}` : "Requests" },
    rows.map((r) => {
      const from = Date.parse(r.created_at) - start;
      const to = Math.max(Date.parse(r.end) - start, from);
      const left = (from / total) * 100;
      const width = Math.max(((to - from) / total) * 100, 0.6);
      const label = `${r.path} · ${r.model || "unknown model"} · status ${r.status} · `
        + `${fmt.ms(r.latency_ms)}, starting ${span(from)} into the session`;
      return h("li", { "data-request-id": r.request_id, "data-path": r.path },
        h("a", { class: `wf-row${r.error ? " wf-error" : ""}`, href: `#/requests/${encodeURIComponent(r.request_id)}`,
          "aria-label": label, title: label },
        indented(r.path_segments),
        h("span", { class: "wf-model" }, r.model || "–", " ", statusBadge(r.status)),
        h("span", { class: "num" }, fmt.ms(r.latency_ms)),
        h("span", { class: "wf-track" }, bar(left, width, r.error))));
    })));
}

function indented(segments: string[]): HTMLElement {
  const el = h("span", { class: "wf-path", "data-depth": segments.length },
    segments.length ? segments[segments.length - 1] : "/");
  el.style.paddingLeft = `${Math.max(segments.length - 1, 0) * 14}px`;
  return el;
}

function bar(left: number, width: number, error: boolean): HTMLElement {
  const el = h("span", { class: `wf-bar${error ? " wf-bar-error" : ""}` });
  // CSSOM, not a style attribute: the page's CSP forbids inline style attributes.
  el.style.left = `${Math.min(left, 99.4)}%`;
  el.style.width = `${Math.min(width, 100 - Math.min(left, 99.4))}%`;
  return el;
}
