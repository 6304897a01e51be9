// Requests: the request log as a table (POST /v1/request/query), with a filter builder that
// edits the filter AST of observability-api.md §2.1 (shown under "Query"), a time range (a
// preset or a custom from/to), sortable columns and paging. A row opens the request's page (#/requests/<id>).
// The state is in the URL (views/requests-state.ts) except the chosen columns, a preference of
// this browser kept in its local storage.

import { Api } from "../api";
import { CUSTOM, customRange } from "../daterange";
import { clear, h, state } from "../dom";
import {
  Condition, FIELDS, FilterNode, OP_LABELS, buildFilter, fieldDef, opsOf, problem,
} from "../filters";
import * as fmt from "../format";
import { currentQuery, queryIsState, writeQuery } from "../urlstate";
import {
  PAGE_SIZES, RANGE_HOURS, RANGE_LABELS, RequestsState, initialRequestsState as blankState, requestsFromQuery,
  requestsQuery,
} from "./requests-state";

export interface RequestRow {
  request_id: string; request_created_at: string; response_status: number;
  model: string; provider: string; request_user_id: string | null;
  delay_ms: number | null; time_to_first_token: number | null;
  total_tokens: number | null; cost: number | null;
}

/** The shell's memory of the view (so going back to the list from a request keeps it), with
 *  the columns this browser chose last. */
export function initialRequestsState(): RequestsState {
  return blankState(savedColumns() ?? COLUMNS.filter((c) => c.shown).map((c) => c.id));
}

const COLUMNS_KEY = "gateway-dashboard.requests.columns";

/** The column ids chosen last in this browser (known ones only), or null. */
function savedColumns(): string[] | null {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(COLUMNS_KEY) ?? "null");
    if (!Array.isArray(parsed)) return null;
    const ids = COLUMNS.map((c) => c.id).filter((id) => parsed.includes(id));
    return ids.length ? ids : null;
  } catch {
    return null; // storage disabled or a value not ours: the defaults
  }
}

function saveColumns(ids: string[]): void {
  try {
    localStorage.setItem(COLUMNS_KEY, JSON.stringify(ids));
  } catch {
    /* storage disabled: the choice lasts as long as the page */
  }
}

interface Column {
  id: string;
  label: string;
  sort?: string;
  num?: boolean;
  /** Shown until the user hides it in the column chooser. */
  shown: boolean;
  cell: (r: RequestRow) => Node | string;
}
const COLUMNS: Column[] = [
  { id: "time", label: "Time", sort: "created_at", shown: true, cell: (r) => fmt.dateTime(r.request_created_at) },
  { id: "status", label: "Status", shown: true, cell: (r) => statusBadge(r.response_status) },
  { id: "model", label: "Model", sort: "body_model", shown: true, cell: (r) => r.model || "–" },
  { id: "provider", label: "Provider", shown: true, cell: (r) => r.provider || "–" },
  { id: "user", label: "User", sort: "user_id", shown: true, cell: (r) => r.request_user_id || "–" },
  { id: "latency", label: "Latency", sort: "latency", num: true, shown: true, cell: (r) => fmt.ms(r.delay_ms) },
  { id: "ttft", label: "TTFT", sort: "time_to_first_token", num: true, shown: false,
    cell: (r) => fmt.ms(r.time_to_first_token) },
  { id: "tokens", label: "Tokens", sort: "total_tokens", num: true, shown: true, cell: (r) => fmt.count(r.total_tokens) },
  { id: "cost", label: "Cost", sort: "cost", num: true, shown: true, cell: (r) => fmt.usd(r.cost) },
  { id: "id", label: "Request id", shown: false, cell: (r) => h("code", {}, r.request_id) },
];
const LIVE_SECONDS = 5;

export function requests(api: Api, signal: AbortSignal, st: RequestsState): HTMLElement {
  if (queryIsState()) Object.assign(st, requestsFromQuery(currentQuery(), st));
  const conditionsBox = h("div", { class: "conditions" });
  const queryText = h("pre", { class: "query", id: "filter-json" });
  const results = h("div", { class: "results" });
  const rangeSelect = h("select", { id: "requests-range", "aria-label": "Time range" },
    Object.entries(RANGE_LABELS).map(([id, label]) => h("option", { value: id, selected: id === st.range }, label)),
    h("option", { value: CUSTOM, selected: st.range === CUSTOM }, "Custom range"));
  const custom = customRange("requests", () => { st.span = custom.span() ?? undefined; st.page = 0; step = true; load(); },
    st.span);
  custom.show(st.range === CUSTOM);
  const joinSelect = h("select", { id: "join", "aria-label": "Join conditions with" },
    h("option", { value: "and", selected: st.join === "and" }, "all conditions (and)"),
    h("option", { value: "or", selected: st.join === "or" }, "any condition (or)"));
  let timer = 0;
  // One load at a time: a newer filter, sort or page cancels the answer still coming.
  let inflight: AbortController | null = null;
  signal.addEventListener("abort", () => { window.clearTimeout(timer); inflight?.abort(); },
    { once: true });

  const filter = (): FilterNode => {
    if (st.range === CUSTOM && st.span) return buildFilter(st.conditions, st.join, st.span.from, st.span.to);
    const hours = RANGE_HOURS[st.range] ?? null;
    const since = hours === null ? null : new Date(Date.now() - hours * 3600_000);
    return buildFilter(st.conditions, st.join, since);
  };
  // The URL follows the state: a new range or page is a step back can undo, the rest edits it.
  let step = false;
  const load = () => {
    writeQuery(requestsQuery(st), step ? "push" : "replace", signal);
    step = false;
    window.clearTimeout(timer);
    inflight?.abort();
    const mine = new AbortController();
    inflight = mine;
    const node = filter();
    queryText.textContent = JSON.stringify(node, null, 2);
    const body = {
      filter: node, offset: st.page * st.pageSize, limit: st.pageSize + 1, // +1: is there more?
      sort: { [st.sort.key]: st.sort.dir },
    };
    results.setAttribute("aria-busy", "true");
    if (!results.querySelector("table")) clear(results, state("loading", "Loading requests…"));
    api.post<RequestRow[]>("/v1/request/query", body, mine.signal).then(
      (rows) => { if (!mine.signal.aborted) renderRows(rows); },
      (error: Error) => {
        if (mine.signal.aborted) return;
        results.removeAttribute("aria-busy");
        clear(results, state("error", `Could not load requests: ${error.message}`));
      });
  };
  const later = () => { window.clearTimeout(timer); timer = window.setTimeout(load, 300); };

  const renderConditions = () => {
    clear(conditionsBox, st.conditions.map((c, i) => conditionRow(c, () => {
      st.conditions.splice(i, 1); st.page = 0; renderConditions(); load();
    }, (immediate) => { st.page = 0; if (immediate) load(); else later(); })));
    if (st.conditions.length === 0) conditionsBox.append(h("p", { class: "muted" }, "No conditions: every request matches."));
  };

  let lastRows: RequestRow[] | null = null;
  const renderRows = (rows: RequestRow[]) => {
    lastRows = rows;
    results.removeAttribute("aria-busy");
    const more = rows.length > st.pageSize;
    rows = rows.slice(0, st.pageSize);
    if (rows.length === 0) {
      clear(results, state("empty", st.page > 0 ? "No more requests." : "No requests match these filters."));
      if (st.page > 0) results.append(pager(false));
      return;
    }
    const visible = COLUMNS.filter((c) => st.columns.includes(c.id));
    const head = h("tr", {}, visible.map((col) => {
      const sorted = col.sort === st.sort.key;
      const th = h("th", {
        scope: "col", class: col.num ? "num" : null,
        "aria-sort": sorted ? (st.sort.dir === "asc" ? "ascending" : "descending") : null,
      });
      if (!col.sort) { th.textContent = col.label; return th; }
      th.append(h("button", { type: "button", class: "sort", "data-sort": col.sort, onclick: () => {
        st.sort = { key: col.sort as string, dir: sorted && st.sort.dir === "desc" ? "asc" : "desc" };
        st.page = 0; load();
      } }, col.label, sorted ? (st.sort.dir === "asc" ? " ▲" : " ▼") : ""));
      return th;
    }));
    const body = h("tbody", {}, rows.map((r) => {
      const open = () => { location.hash = `#/requests/${encodeURIComponent(r.request_id)}`; };
      const tr = h("tr", { tabindex: "0", class: "link", "data-request-id": r.request_id,
        "aria-label": `Request ${r.request_id}`, onclick: open,
        onkeydown: (e: Event) => { if ((e as KeyboardEvent).key === "Enter") open(); } },
        visible.map((col) => h("td", { class: col.num ? "num" : null }, col.cell(r))));
      return tr;
    }));
    clear(results, h("div", { class: "scroll" }, h("table", { class: "requests" }, h("thead", {}, head), body)),
      pager(more));
  };

  const pager = (more: boolean) => {
    const size = h("select", { id: "page-size", "aria-label": "Rows per page" },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === st.pageSize }, `${n} per page`)));
    size.addEventListener("change", () => { st.pageSize = Number(size.value); st.page = 0; load(); });
    const go = (page: number) => { st.page = page; step = true; load(); };
    return h("div", { class: "pager" }, size,
      h("button", { type: "button", id: "newer", disabled: st.page === 0,
        onclick: () => go(st.page - 1) }, "← Previous"),
      h("span", { "aria-live": "polite" }, `Page ${st.page + 1}`),
      h("button", { type: "button", id: "older", disabled: !more,
        onclick: () => go(st.page + 1) }, "Next →"));
  };

  rangeSelect.addEventListener("change", () => {
    st.range = rangeSelect.value;
    custom.show(st.range === CUSTOM);
    if (st.range === CUSTOM) {
      st.span = custom.span() ?? undefined;
      if (!st.span) return; // the note says what is missing
    }
    st.page = 0;
    step = true;
    load();
  });
  joinSelect.addEventListener("change", () => { st.join = joinSelect.value as "and" | "or"; st.page = 0; load(); });
  const add = h("button", { type: "button", id: "add-condition", onclick: () => {
    st.conditions.push({ field: "model", key: "", op: "equals", value: "" });
    renderConditions();
    (conditionsBox.lastElementChild?.querySelector("input.value") as HTMLElement | null)?.focus();
  } }, "+ Add condition");

  const chooser = h("details", { class: "columns" }, h("summary", {}, "Columns"),
    h("fieldset", { class: "column-list" }, h("legend", {}, "Columns shown"),
      COLUMNS.map((c) => {
        const box = h("input", { type: "checkbox", value: c.id, checked: st.columns.includes(c.id) });
        box.addEventListener("change", () => {
          st.columns = COLUMNS.filter((col) => (col.id === c.id ? box.checked : st.columns.includes(col.id)))
            .map((col) => col.id);
          saveColumns(st.columns);
          if (lastRows) renderRows(lastRows);
        });
        return h("label", {}, box, ` ${c.label}`);
      })));

  // Live tail: the first page, newest first, reloaded every few seconds while the tab shows.
  const liveBox = h("input", { type: "checkbox", id: "live", checked: st.live });
  let liveTimer = 0;
  const setLive = () => {
    window.clearInterval(liveTimer);
    if (!st.live) return;
    liveTimer = window.setInterval(() => {
      const tailing = st.page === 0 && st.sort.key === "created_at" && st.sort.dir === "desc";
      if (tailing && !document.hidden) load();
    }, LIVE_SECONDS * 1000);
  };
  liveBox.addEventListener("change", () => {
    st.live = liveBox.checked;
    if (st.live) {
      st.page = 0;
      st.sort = { key: "created_at", dir: "desc" };
      load();
    } else {
      writeQuery(requestsQuery(st), "replace", signal);
    }
    setLive();
  });
  signal.addEventListener("abort", () => window.clearInterval(liveTimer), { once: true });

  renderConditions();
  load();
  setLive();
  return h("section", { class: "view", "aria-labelledby": "requests-title" },
    h("div", { class: "toolbar" },
      h("h1", { id: "requests-title" }, "Requests"),
      h("label", { class: "inline" }, "Range ", rangeSelect),
      custom.element,
      h("label", { class: "inline", title: `Newest first, reloaded every ${LIVE_SECONDS} s` },
        liveBox, "Live"),
      chooser),
    h("fieldset", { class: "filters" },
      h("legend", {}, "Filters"),
      h("label", { class: "inline" }, "Match ", joinSelect),
      conditionsBox,
      add,
      h("details", {}, h("summary", {}, "Query (filter AST)"), queryText)),
    results);
}

function conditionRow(c: Condition, remove: () => void, changed: (immediate: boolean) => void): HTMLElement {
  const row = h("div", { class: "condition", role: "group", "aria-label": "Condition" });
  const render = () => {
    const def = fieldDef(c.field);
    const ops = opsOf(def);
    if (!ops.includes(c.op)) c.op = ops[0];
    if (def.kind === "bool" && c.value !== "true" && c.value !== "false") c.value = "true";
    const field = h("select", { class: "field", "aria-label": "Field" },
      FIELDS.map((f) => h("option", { value: f.field, selected: f.field === c.field }, f.label)));
    field.addEventListener("change", () => { c.field = field.value; c.value = ""; render(); changed(true); });
    const key = def.keyed ? h("input", { class: "key", "aria-label": `${def.label} name`, value: c.key,
      placeholder: def.field === "scores" ? "score name" : "property name" }) : null;
    key?.addEventListener("input", () => { c.key = key.value; note(); changed(false); });
    const op = h("select", { class: "op", "aria-label": "Operator" },
      ops.map((o) => h("option", { value: o, selected: o === c.op }, OP_LABELS[o] ?? o)));
    op.addEventListener("change", () => { c.op = op.value; changed(true); });
    let value: HTMLInputElement | HTMLSelectElement;
    if (def.kind === "bool") {
      value = h("select", { class: "value", "aria-label": "Value" },
        h("option", { value: "true", selected: c.value === "true" }, "yes"),
        h("option", { value: "false", selected: c.value === "false" }, "no"));
      value.addEventListener("change", () => { c.value = value.value; changed(true); });
    } else {
      value = h("input", { class: "value", "aria-label": "Value", value: c.value,
        inputmode: def.kind === "number" || def.field === "scores" ? "decimal" : null });
      value.addEventListener("input", () => { c.value = value.value; note(); changed(false); });
      value.addEventListener("keydown", (e) => { if (e.key === "Enter") changed(true); });
    }
    const hint = h("span", { class: "hint", "aria-live": "polite" });
    const note = () => { hint.textContent = problem(c) ?? ""; };
    note();
    clear(row, field, key, op, value,
      h("button", { type: "button", class: "quiet", "aria-label": "Remove condition", onclick: remove }, "✕"),
      hint);
  };
  render();
  return row;
}

export function statusBadge(status: number | null | undefined): HTMLElement {
  const s = status ?? 0;
  const kind = s >= 200 && s < 400 ? "ok" : s === 0 ? "pending" : "error";
  return h("span", { class: `badge badge-${kind}` }, s ? String(s) : "–");
}
