// Users (Helicone-User-Id): per user in a range, requests, errors, cost, tokens, days active,
// first and last seen. The page of users and their sums come from POST /v1/user/metrics/query
// (sortable, paged, searchable by id); their errors from POST /v1/dashboard/series/query
// grouped by user, filtered to the page's users.

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { currentQuery, writeQuery } from "../urlstate";
import {
  Column, latest, listFromQuery, listQuery, pager, rangeOf, rangePicker, requestsLink, Sort, table,
} from "./shared";

interface UserRow {
  user_id: string; total_requests: number; cost: number; active_for: number;
  first_active: string; last_active: string; total_prompt_tokens: number;
  total_completion_tokens: number; rate_limited_count: number;
}
interface UserPage { hasUsers: boolean; count: number; users: UserRow[] }
interface Series { group: string | null; other: boolean; totals: { requests: number; errors: number } }

const PAGE_SIZE = 25;

const SORTS = ["user_id", "total_requests", "cost", "total_prompt_tokens", "rate_limited_count", "active_for",
  "first_active", "last_active"];
const DEFAULT_SORT: Sort = { key: "cost", dir: "desc" };

/** The sort in the URL (`sort=cost.desc`), or the default. */
function sortFromQuery(): Sort {
  const [key = "", dir = ""] = (currentQuery().get("sort") ?? "").split(".");
  return SORTS.includes(key) && (dir === "asc" || dir === "desc") ? { key, dir } : DEFAULT_SORT;
}

export function users(api: Api, signal: AbortSignal): HTMLElement {
  const body = h("div", { class: "users-body" });
  const initial = listFromQuery();
  const search = h("input", { type: "search", id: "user-search", placeholder: "User id contains",
    "aria-label": "Search users by id", value: initial.search });
  let page = initial.page;
  let sort: Sort = sortFromQuery();
  let timer = 0;
  signal.addEventListener("abort", () => window.clearTimeout(timer), { once: true });
  const next = latest(signal);
  const load = (mode: "push" | "replace" = "replace") => {
    window.clearTimeout(timer);
    const sorted = sort.key === DEFAULT_SORT.key && sort.dir === DEFAULT_SORT.dir ? null : `${sort.key}.${sort.dir}`;
    writeQuery({ ...listQuery({ range: picker.value, search: search.value.trim(), page }), sort: sorted },
      mode, signal);
    void render(api, body, rangeOf(picker), search.value.trim(), page, sort, {
      page: (p) => { page = p; load("push"); },
      sort: (s) => { sort = s; page = 0; load(); },
    }, next());
  };
  const picker = rangePicker("user-range", initial.range, () => { page = 0; load("push"); });
  search.addEventListener("input", () => {
    page = 0;
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") { page = 0; load(); } });
  load();
  return h("section", { class: "view", "aria-labelledby": "users-title" },
    h("div", { class: "toolbar" },
      h("h1", { id: "users-title" }, "Users"),
      h("label", { class: "inline" }, "Range ", picker),
      search),
    body);
}

function userLeaf(id: string): unknown {
  return { request_response_rmt: { user_id: { equals: id } } };
}

/** `a or b or c`, as the filter AST's left-nested chain. */
function anyOf(leaves: unknown[]): unknown {
  return leaves.reduce((left, right) => ({ left, operator: "or", right }));
}

async function render(api: Api, body: HTMLElement, { range, start, end }: ReturnType<typeof rangeOf>,
  search: string, page: number, sort: Sort,
  go: { page: (page: number) => void; sort: (sort: Sort) => void }, signal: AbortSignal): Promise<void> {
  body.setAttribute("aria-busy", "true");
  if (!body.querySelector("table")) clear(body, state("loading", "Loading users…"));
  const filter = search ? { users_view: { user_user_id: { contains: search } } } : "all";
  let answer: UserPage;
  const errors = new Map<string, number>();
  try {
    answer = await api.post<UserPage>("/v1/user/metrics/query", {
      filter, offset: page * PAGE_SIZE, limit: PAGE_SIZE, sort: { [sort.key]: sort.dir },
      timeFilter: {
        startTimeUnixSeconds: Math.floor(start.getTime() / 1000),
        endTimeUnixSeconds: Math.ceil(end.getTime() / 1000),
      },
      timeZoneDifferenceMinutes: new Date().getTimezoneOffset(),
    }, signal);
    if (answer.users.length) {
      const series = await api.post<{ series: Series[] }>("/v1/dashboard/series/query", {
        timeFilter: { start: start.toISOString(), end: end.toISOString() },
        dbIncrement: range.increment, groupBy: "user", groupLimit: PAGE_SIZE,
        filter: anyOf(answer.users.map((u) => userLeaf(u.user_id))),
      }, signal);
      for (const s of series.series) if (!s.other && s.group !== null) errors.set(s.group, s.totals.errors);
    }
  } catch (error) {
    if (signal.aborted) return;
    body.removeAttribute("aria-busy");
    clear(body, state("error", `Could not load users: ${(error as Error).message}`));
    return;
  }
  if (signal.aborted) return;
  body.removeAttribute("aria-busy");
  const rows = answer.users;
  const more = (page + 1) * PAGE_SIZE < answer.count;
  if (rows.length === 0) {
    clear(body, state("empty", page > 0 ? "No more users."
      : !answer.hasUsers ? "No request has named a user yet: send the Helicone-User-Id header."
        : search ? `No user id in the ${range.label.toLowerCase()} contains "${search}".`
          : `No requests named a user in the ${range.label.toLowerCase()}.`));
    if (page > 0) body.append(pager("users", page, false, go.page));
    return;
  }
  const columns: Column<UserRow>[] = [
    { label: "User", sort: "user_id", cell: (u) => requestsLink(u.user_id,
      { field: "user_id", key: "", op: "equals", value: u.user_id }, range.id,
      `${u.user_id}: show their requests`) },
    { label: "Requests", num: true, sort: "total_requests", cell: (u) => fmt.count(u.total_requests) },
    { label: "Errors", num: true, cell: (u) => fmt.count(errors.get(u.user_id)) },
    { label: "Cost", num: true, sort: "cost", cell: (u) => fmt.usd(u.cost) },
    { label: "Tokens", num: true, sort: "total_prompt_tokens",
      cell: (u) => fmt.count(u.total_prompt_tokens + u.total_completion_tokens) },
    { label: "Rate limited", num: true, sort: "rate_limited_count", cell: (u) => fmt.count(u.rate_limited_count) },
    { label: "Days active", num: true, sort: "active_for", cell: (u) => fmt.count(u.active_for) },
    { label: "First seen", sort: "first_active", cell: (u) => fmt.dateTime(u.first_active) },
    { label: "Last seen", sort: "last_active", cell: (u) => fmt.dateTime(u.last_active) },
  ];
  clear(body,
    h("p", { class: "muted", role: "status" },
      `${fmt.count(answer.count)} ${answer.count === 1 ? "user" : "users"} in the ${range.label.toLowerCase()}.`),
    table("users", columns, rows, (u) => ({
      "data-user-id": u.user_id, "data-requests": String(u.total_requests), "data-cost": String(u.cost),
      "data-errors": String(errors.get(u.user_id) ?? ""),
    }), sort, go.sort),
    pager("users", page, more, go.page));
}
