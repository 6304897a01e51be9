// The Requests view's state and its place in the URL (`#/requests?range=custom&from=…&f=…`):
// the range (a preset, or a custom span with absolute UTC ends), the filter conditions and
// their join, the sort, the page and its size, and the live tail. Whatever the URL holds that
// is malformed or stale (an unknown field, a bad date, a page size not offered) falls back to
// the default for that part alone, silently: an old link still opens.

import { CUSTOM, Span } from "../daterange";
import { Condition, FIELDS, fieldDef, opsOf } from "../filters";
import { QueryValues, oneOf, parseSpan, utcMinute, wholeNumber } from "../urlstate";

export interface RequestsState {
  conditions: Condition[];
  join: "and" | "or";
  range: string;
  /** The chosen span when `range` is "custom". */
  span?: Span;
  sort: { key: string; dir: "asc" | "desc" };
  page: number;
  pageSize: number;
  /** Column ids shown (the column chooser; kept in the browser, not the URL). */
  columns: string[];
  /** Live tail: reload every few seconds (first page, newest first). */
  live: boolean;
}

export const PAGE_SIZES = [10, 25, 50, 100];
export const RANGE_HOURS: Record<string, number | null> = {
  "1h": 1, "24h": 24, "7d": 168, "30d": 720, all: null,
};
export const RANGE_LABELS: Record<string, string> = {
  "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", all: "All time",
};
/** The API's sort keys the table's headings offer. */
export const SORT_KEYS = [
  "created_at", "body_model", "user_id", "latency", "time_to_first_token", "total_tokens", "cost",
] as const;
const DEFAULT_RANGE = "7d";
const DEFAULT_SORT = { key: "created_at", dir: "desc" } as const;
const DEFAULT_PAGE_SIZE = 25;
const MAX_CONDITIONS = 50;

export function initialRequestsState(columns: string[]): RequestsState {
  return { conditions: [], join: "and", range: DEFAULT_RANGE, sort: { ...DEFAULT_SORT }, page: 0,
    pageSize: DEFAULT_PAGE_SIZE, columns, live: false };
}

/** The conditions, compactly: `[field, op, value]`, or `[field, key, op, value]` for a property
 *  or a score. */
export function encodeConditions(conditions: Condition[]): string {
  if (conditions.length === 0) return "";
  return JSON.stringify(conditions.map((c) =>
    fieldDef(c.field).keyed ? [c.field, c.key, c.op, c.value] : [c.field, c.op, c.value]));
}

/** The conditions of `f`, each one checked; a malformed one is dropped, a malformed list is none. */
export function decodeConditions(text: string | null): Condition[] {
  if (!text) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const out: Condition[] = [];
  for (const item of parsed.slice(0, MAX_CONDITIONS)) {
    if (!Array.isArray(item) || !item.every((part) => typeof part === "string")) continue;
    const def = FIELDS.find((f) => f.field === item[0]);
    if (!def || item.length !== (def.keyed ? 4 : 3)) continue;
    const [key, op, value] = def.keyed ? item.slice(1) as string[] : ["", ...item.slice(1)] as string[];
    const ops = opsOf(def);
    out.push({ field: def.field, key, op: ops.includes(op) ? op : ops[0], value });
  }
  return out;
}

/** The URL's query for `st` (defaults left out). */
export function requestsQuery(st: RequestsState): QueryValues {
  const custom = st.range === CUSTOM && st.span !== undefined;
  const sorted = st.sort.key !== DEFAULT_SORT.key || st.sort.dir !== DEFAULT_SORT.dir;
  return {
    range: st.range === DEFAULT_RANGE || (st.range === CUSTOM && !custom) ? null : st.range,
    from: custom && st.span ? utcMinute(st.span.from) : null,
    to: custom && st.span ? utcMinute(st.span.to) : null,
    f: encodeConditions(st.conditions),
    join: st.join === "or" ? "or" : null,
    sort: sorted ? `${st.sort.key}.${st.sort.dir}` : null,
    page: st.page > 0 ? st.page + 1 : null,
    size: st.pageSize === DEFAULT_PAGE_SIZE ? null : st.pageSize,
    live: st.live ? 1 : null,
  };
}

/** The state a URL's query describes, over `base` (its columns are kept). */
export function requestsFromQuery(query: URLSearchParams, base: RequestsState): RequestsState {
  let range = oneOf(query.get("range"), [...Object.keys(RANGE_HOURS), CUSTOM], DEFAULT_RANGE);
  let span: Span | undefined;
  if (range === CUSTOM) {
    span = parseSpan(query) ?? undefined;
    if (!span) range = DEFAULT_RANGE;
  }
  const [key = "", dir = ""] = (query.get("sort") ?? "").split(".");
  const sort = (SORT_KEYS as readonly string[]).includes(key) && (dir === "asc" || dir === "desc")
    ? { key, dir: dir as "asc" | "desc" } : { ...DEFAULT_SORT };
  const size = wholeNumber(query.get("size"), 1, 1000, DEFAULT_PAGE_SIZE);
  return {
    conditions: decodeConditions(query.get("f")),
    join: query.get("join") === "or" ? "or" : "and",
    range, span, sort,
    page: wholeNumber(query.get("page"), 1, 1_000_000, 1) - 1,
    pageSize: PAGE_SIZES.includes(size) ? size : DEFAULT_PAGE_SIZE,
    columns: base.columns,
    live: query.get("live") === "1",
  };
}

/** A link to the request log filtered to one condition over a range of the other views
 *  (their "90d" is the log's "all time"). */
export function requestsHref(condition: Condition, range: string): string {
  const st = initialRequestsState([]);
  st.conditions = [condition];
  st.range = range === "90d" ? "all" : range in RANGE_HOURS ? range : DEFAULT_RANGE;
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(requestsQuery(st))) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  return `#/requests?${query.toString()}`;
}
