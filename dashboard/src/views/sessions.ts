// Sessions: the sessions (requests sharing Helicone-Session-Id) that started in a range,
// newest first, with their requests, cost, tokens, latency and users (POST /v1/session/query),
// and the range's averages per session (POST /v1/session/metrics/query). A session opens its
// trace page (#/sessions/<id>).

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { writeQuery } from "../urlstate";
import {
  average, latest, listFromQuery, listQuery, metricCard, pager, rangeOf, rangePicker, span, table,
} from "./shared";

export interface SessionRow {
  session_id: string; session_name: string; created_at: string; latest_request_created_at: string;
  total_cost: number; total_requests: number; prompt_tokens: number; completion_tokens: number;
  total_tokens: number; avg_latency: number | null; user_ids: string[];
}
interface Average { average: number | null }
interface SessionMetrics {
  average: { session_cost: Average[]; session_duration: Average[]; session_count: Average[] };
}

const PAGE_SIZE = 25;

export function sessionHref(id: string): string {
  return `#/sessions/${encodeURIComponent(id)}`;
}

export function sessions(api: Api, signal: AbortSignal): HTMLElement {
  const body = h("div", { class: "sessions-body" });
  const initial = listFromQuery();
  const search = h("input", { type: "search", id: "session-search", placeholder: "Name or id contains",
    "aria-label": "Search sessions by name or id", value: initial.search });
  let page = initial.page;
  let timer = 0;
  signal.addEventListener("abort", () => window.clearTimeout(timer), { once: true });
  const next = latest(signal);
  const load = (mode: "push" | "replace" = "replace") => {
    window.clearTimeout(timer);
    writeQuery(listQuery({ range: picker.value, search: search.value.trim(), page }), mode, signal);
    void render(api, body, rangeOf(picker), search.value.trim(), page, (p) => { page = p; load("push"); }, next());
  };
  const picker = rangePicker("session-range", initial.range, () => { page = 0; load("push"); });
  search.addEventListener("input", () => {
    page = 0;
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") { page = 0; load(); } });
  load();
  return h("section", { class: "view", "aria-labelledby": "sessions-title" },
    h("div", { class: "toolbar" },
      h("h1", { id: "sessions-title" }, "Sessions"),
      h("label", { class: "inline" }, "Range ", picker),
      search),
    body);
}

async function render(api: Api, body: HTMLElement, { range, start, end }: ReturnType<typeof rangeOf>,
  search: string, page: number, go: (page: number) => void, signal: AbortSignal): Promise<void> {
  body.setAttribute("aria-busy", "true");
  if (!body.querySelector("table")) clear(body, state("loading", "Loading sessions…"));
  const timeFilter = { startTimeUnixMs: start.getTime(), endTimeUnixMs: end.getTime() };
  let rows: SessionRow[], metrics: SessionMetrics;
  try {
    [rows, metrics] = await Promise.all([
      api.post<SessionRow[]>("/v1/session/query", {
        filter: "all", timeFilter, search, offset: page * PAGE_SIZE, limit: PAGE_SIZE + 1,
        timezoneDifference: 0,
      }, signal),
      api.post<SessionMetrics>("/v1/session/metrics/query", {
        filter: "all", timeFilter, nameContains: search, timezoneDifference: 0,
      }, signal),
    ]);
  } catch (error) {
    if (signal.aborted) return;
    body.removeAttribute("aria-busy");
    clear(body, state("error", `Could not load sessions: ${(error as Error).message}`));
    return;
  }
  if (signal.aborted) return;
  body.removeAttribute("aria-busy");
  const more = rows.length > PAGE_SIZE;
  rows = rows.slice(0, PAGE_SIZE);
  if (rows.length === 0) {
    clear(body, state("empty", page > 0 ? "No more sessions."
      : search ? `No session in the ${range.label.toLowerCase()} has "${search}" in its name or id.`
        : `No sessions in the ${range.label.toLowerCase()}. Requests join a session with the Helicone-Session-Id header.`));
    if (page > 0) body.append(pager("sessions", page, false, go));
    return;
  }
  const avg = (list: Average[]) => list[0]?.average ?? null;
  const a = metrics.average;
  const duration = (r: SessionRow) => Date.parse(r.latest_request_created_at) - Date.parse(r.created_at);
  clear(body,
    h("div", { class: "cards" },
      metricCard("avg-requests", "Requests per session", average(avg(a.session_count)), avg(a.session_count),
        "average"),
      metricCard("avg-cost", "Cost per session", fmt.usd(avg(a.session_cost)), avg(a.session_cost), "average"),
      metricCard("avg-duration", "Session length", span((avg(a.session_duration) ?? NaN) * 1000),
        avg(a.session_duration), "average, first to last request")),
    table<SessionRow>("sessions", [
      { label: "Session", cell: (r) => h("a", { href: sessionHref(r.session_id) },
        r.session_name || "(no name)", h("span", { class: "muted id" }, ` ${r.session_id}`)) },
      { label: "Started", cell: (r) => fmt.dateTime(r.created_at) },
      { label: "First to last", num: true, cell: (r) => span(duration(r)) },
      { label: "Requests", num: true, cell: (r) => fmt.count(r.total_requests) },
      { label: "Cost", num: true, cell: (r) => fmt.usd(r.total_cost) },
      { label: "Tokens", num: true, cell: (r) => fmt.count(r.total_tokens) },
      { label: "Avg latency", num: true, cell: (r) => fmt.ms(r.avg_latency) },
      { label: "Users", cell: (r) => r.user_ids.join(", ") || "–" },
    ], rows, (r) => ({ "data-session-id": r.session_id })),
    pager("sessions", page, more, go));
}
