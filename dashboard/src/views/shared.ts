// Pieces the Sessions, Users and Properties views share: a range picker, a table with
// headings, a metric card, and "one load at a time" (a newer load cancels the answer still
// coming for the older one, so a slow answer never overwrites a newer view).

import "./analytics.css";
import { h } from "../dom";
import { Condition } from "../filters";
import { currentQuery, oneOf, wholeNumber } from "../urlstate";
import { RANGES, Range } from "./overview";
import { requestsHref } from "./requests-state";

export function rangePicker(id: string, initial: string, onChange: () => void): HTMLSelectElement {
  const picker = h("select", { id, "aria-label": "Time range" },
    RANGES.map((r) => h("option", { value: r.id, selected: r.id === initial }, r.label)));
  picker.addEventListener("change", onChange);
  return picker;
}

export function rangeOf(picker: HTMLSelectElement): { range: Range; start: Date; end: Date } {
  const range = RANGES.find((r) => r.id === picker.value) ?? RANGES[2];
  const end = new Date();
  return { range, start: new Date(end.getTime() - range.hours * 3600_000), end };
}

/** Calls `run` with a fresh signal each time, aborting the previous one (and all on `outer`). */
export function latest(outer: AbortSignal): () => AbortSignal {
  let inflight: AbortController | null = null;
  outer.addEventListener("abort", () => inflight?.abort(), { once: true });
  return () => {
    inflight?.abort();
    inflight = new AbortController();
    return inflight.signal;
  };
}

export interface Column<T> {
  label: string;
  num?: boolean;
  cell: (row: T) => Node | string;
  /** The API's sort key, when the column sorts. */
  sort?: string;
}

export interface Sort { key: string; dir: "asc" | "desc" }

/** A table; the first column is the row's heading. Sortable columns get a heading button. */
export function table<T>(cls: string, columns: Column<T>[], rows: T[], rowAttrs: (row: T) => Record<string, string>,
  sort?: Sort, onSort?: (sort: Sort) => void): HTMLElement {
  const head = h("tr", {}, columns.map((col) => {
    const sorted = sort !== undefined && col.sort === sort.key;
    const th = h("th", { scope: "col", class: col.num ? "num" : null,
      "aria-sort": sorted ? (sort.dir === "asc" ? "ascending" : "descending") : null });
    if (!col.sort || !onSort || !sort) {
      th.textContent = col.label;
      return th;
    }
    const key = col.sort;
    th.append(h("button", { type: "button", class: "sort", "data-sort": key,
      onclick: () => onSort({ key, dir: sorted && sort.dir === "desc" ? "asc" : "desc" }) },
    col.label, sorted ? (sort.dir === "asc" ? " ▲" : " ▼") : ""));
    return th;
  }));
  const body = h("tbody", {}, rows.map((row) => h("tr", rowAttrs(row), columns.map((col, i) =>
    h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: col.num ? "num" : null }, col.cell(row))))));
  return h("div", { class: "scroll" }, h("table", { class: cls }, h("thead", {}, head), body));
}

export function metricCard(id: string, label: string, text: string, value: number | null,
  detail?: string): HTMLElement {
  return h("div", { class: "card", "data-metric": id, "data-value": value === null ? "" : String(value) },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value" }, text),
    detail ? h("div", { class: "card-detail muted" }, detail) : null);
}

/** Previous / next buttons for a page of `size` fetched with one extra row (`more`). */
export function pager(prefix: string, page: number, more: boolean, go: (page: number) => void): HTMLElement {
  return h("div", { class: "pager" },
    h("button", { type: "button", id: `${prefix}-newer`, disabled: page === 0, onclick: () => go(page - 1) },
      "← Previous"),
    h("span", { "aria-live": "polite" }, `Page ${page + 1}`),
    h("button", { type: "button", id: `${prefix}-older`, disabled: !more, onclick: () => go(page + 1) },
      "Next →"));
}

/** A duration in ms, s, min or h. */
export function span(msValue: number | null | undefined): string {
  if (msValue === null || msValue === undefined || !Number.isFinite(msValue)) return "–";
  if (msValue < 1000) return `${Math.round(msValue)} ms`;
  if (msValue < 60_000) return `${(msValue / 1000).toFixed(1)} s`;
  if (msValue < 3_600_000) return `${(msValue / 60_000).toFixed(1)} min`;
  return `${(msValue / 3_600_000).toFixed(1)} h`;
}

/** A link to the request log filtered to `condition` over `range` (the filter is in the link). */
export function requestsLink(text: string, condition: Condition, range: string, label: string): HTMLElement {
  return h("a", { href: requestsHref(condition, range), class: "to-requests", title: label, "aria-label": label },
    text);
}

/** The URL state of the Sessions, Users and Properties views: a range, a search, a page. */
export interface ListState { range: string; search: string; page: number }

const DEFAULT_LIST_RANGE = "7d";

/** The list state in the current URL; anything malformed is its default. */
export function listFromQuery(): ListState {
  const query = currentQuery();
  return {
    range: oneOf(query.get("range"), RANGES.map((r) => r.id), DEFAULT_LIST_RANGE),
    search: (query.get("q") ?? "").slice(0, 200),
    page: wholeNumber(query.get("page"), 1, 1_000_000, 1) - 1,
  };
}

/** The URL's query for a list state (defaults left out). */
export function listQuery(st: ListState): Record<string, string | number | null> {
  return { range: st.range === DEFAULT_LIST_RANGE ? null : st.range, q: st.search || null,
    page: st.page > 0 ? st.page + 1 : null };
}

const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** An average count (4.3 requests per session): one decimal. */
export function average(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "–" : oneDecimal.format(value);
}
