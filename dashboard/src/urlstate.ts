// A view's state in the hash's query part (`#/requests?range=7d&page=2`), so that a reload or
// a shared link shows the same view. The path part (`#/<view>[/<id>]`) picks the view; the
// query part is the view's own business: it reads it once when it is built and writes it back
// as the user changes things. Nothing secret ever goes in: keys live in the HttpOnly cookie.
//
// Writing uses the History API, which does not fire `hashchange` (the view is not rebuilt for
// its own change): a keystroke-level change replaces the current entry, a step the user may
// want to go back to (another range, another page) pushes one. Going back to an entry does
// fire `hashchange`, and the shell rebuilds the view from that entry's query.

export interface Route {
  /** The first part of the path (`requests`), "" when absent. */
  view: string;
  /** The second part, decoded (`#/requests/<id>`), "" when absent. */
  id: string;
  query: URLSearchParams;
}

/** The route of a hash (`location.hash`). A malformed escape in the id is kept as typed. */
export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const mark = raw.indexOf("?");
  const path = mark < 0 ? raw : raw.slice(0, mark);
  const query = new URLSearchParams(mark < 0 ? "" : raw.slice(mark + 1));
  const [, view = "", rawId = ""] = path.split("/");
  let id = rawId;
  try {
    id = decodeURIComponent(rawId);
  } catch {
    /* shown as typed: the API says it is not found */
  }
  return { view, id, query };
}

/** The path part of a hash (`/sessions/s1` of `#/sessions/s1?range=7d`) and its query text. */
export function splitHash(hash: string): { path: string; query: string } {
  const raw = hash.replace(/^#/, "");
  const mark = raw.indexOf("?");
  return mark < 0 ? { path: raw, query: "" } : { path: raw.slice(0, mark), query: raw.slice(mark + 1) };
}

/** Gives the current entry `query` (a view's state shown before), marked as its state. */
export function restoreQuery(query: string): void {
  const { path } = splitHash(location.hash);
  history.replaceState(WRITTEN, "", `${location.pathname}${location.search}#${path}${query ? `?${query}` : ""}`);
}

/** The query of the current hash. */
export function currentQuery(): URLSearchParams {
  return parseRoute(location.hash).query;
}

const WRITTEN = { dashboardQuery: true };

/** Values left out (null, undefined, "") are the view's defaults: the URL stays short. */
export type QueryValues = Record<string, string | number | null | undefined>;

/** Puts `values` in the current hash's query, keeping its path; "replace" edits the current
 *  history entry, "push" adds one (none when the query is the same). The entry is marked as
 *  written by its view (see `queryIsState`). Nothing is written once `signal` has fired (the
 *  user has gone to another view). */
export function writeQuery(values: QueryValues, mode: "replace" | "push", signal: AbortSignal): void {
  if (signal.aborted) return;
  const { path } = splitHash(location.hash);
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  const hash = `#${path}${text ? `?${text}` : ""}`;
  const same = hash === location.hash || (hash === "#" && location.hash === "");
  const url = `${location.pathname}${location.search}${hash}`;
  // The mark says "this entry's query is the whole state" (an empty one meaning defaults).
  if (mode === "push" && !same) history.pushState(WRITTEN, "", url);
  else history.replaceState(WRITTEN, "", url);
}

/** Whether the current entry's query is the view's whole state: it has one, or a view wrote
 *  it (an empty query a view wrote means its defaults). A bare `#/requests` followed from a
 *  link is neither: the view may then show what it showed last. */
export function queryIsState(): boolean {
  if (currentQuery().toString() !== "") return true;
  const mark = history.state as { dashboardQuery?: unknown } | null;
  return mark !== null && typeof mark === "object" && mark.dashboardQuery === true;
}

/** A URL's end of a custom range: UTC, to the minute (`2026-12-01T10:00Z`). */
export function utcMinute(date: Date): string {
  return `${date.toISOString().slice(0, 16)}Z`;
}

/** A date from the URL, or null when missing or not a date. */
export function parseDate(text: string | null): Date | null {
  if (!text) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A custom span from `from` and `to`, or null unless both are dates and from is before to. */
export function parseSpan(query: URLSearchParams): { from: Date; to: Date } | null {
  const from = parseDate(query.get("from"));
  const to = parseDate(query.get("to"));
  return from && to && from.getTime() < to.getTime() ? { from, to } : null;
}

/** A whole number from the URL within [min, max], else `fallback`. */
export function wholeNumber(text: string | null, min: number, max: number, fallback: number): number {
  if (text === null || !/^\d{1,9}$/.test(text)) return fallback;
  const value = Number(text);
  return value >= min && value <= max ? value : fallback;
}

/** `value` when it is one of `allowed`, else `fallback`. */
export function oneOf<T extends string>(value: string | null, allowed: readonly T[], fallback: T): T {
  return value !== null && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}
