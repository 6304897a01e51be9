// Overview: totals, charts over time and breakdowns for a time range, from
// POST /v1/dashboard/series/query (ungrouped, by model, by provider) and the top users from
// POST /v1/user/metrics/query. Times are bucketed in the browser's time zone or in UTC. The
// range and the zone are in the URL (`#/overview?range=custom&from=…Z&to=…Z&tz=utc`).

import { Api } from "../api";
import { Line, timeChart } from "../chart";
import { CUSTOM, customRange, incrementFor, Span } from "../daterange";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { currentQuery, oneOf, parseSpan, utcMinute, writeQuery } from "../urlstate";

interface Distribution { avg: number | null; p50?: number | null; p95?: number | null }
interface Sums {
  requests: number; errors: number; error_rate: number; cost: number;
  prompt_tokens: number; completion_tokens: number; total_tokens: number;
  cache_hits: number; latency: Distribution; ttft: Distribution;
}
interface Point extends Sums { time: string; users: number }
interface Series { group: string | null; other: boolean; totals: Sums; points: Point[] }
interface SeriesAnswer {
  buckets: string[]; series: Series[];
  /** Ungrouped only: what the range's cache hits saved. */
  cache_savings?: { cost: number; latency_ms: number };
}
interface UserRow { user_id: string; total_requests: number; cost: number; last_active: string }

export interface Range { id: string; label: string; hours: number; increment: string }
export const RANGES: Range[] = [
  { id: "1h", label: "Last hour", hours: 1, increment: "min" },
  { id: "24h", label: "Last 24 hours", hours: 24, increment: "hour" },
  { id: "7d", label: "Last 7 days", hours: 24 * 7, increment: "hour" },
  { id: "30d", label: "Last 30 days", hours: 24 * 30, increment: "day" },
  { id: "90d", label: "Last 90 days", hours: 24 * 90, increment: "day" },
];

const DEFAULT_RANGE = "24h";

export function overview(api: Api, signal: AbortSignal): HTMLElement {
  const query = currentQuery();
  const chosen = parseSpan(query);
  let initial = oneOf(query.get("range"), [...RANGES.map((r) => r.id), CUSTOM], DEFAULT_RANGE);
  if (initial === CUSTOM && chosen === null) initial = DEFAULT_RANGE; // a custom range needs both ends
  const body = h("div", { class: "overview-body" });
  const picker = h("select", { id: "range", "aria-label": "Time range" },
    RANGES.map((r) => h("option", { value: r.id, selected: r.id === initial }, r.label)),
    h("option", { value: CUSTOM, selected: initial === CUSTOM }, "Custom range"));
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const utcChosen = query.get("tz") === "utc";
  const zonePicker = h("select", { id: "zone", "aria-label": "Time zone" },
    h("option", { value: "local" }, `Local (${zone})`),
    h("option", { value: "utc", selected: utcChosen }, "UTC"));
  const custom = customRange("overview", () => load("push"), chosen ?? undefined);
  const section = h("section", { class: "view", "aria-labelledby": "overview-title" },
    h("div", { class: "toolbar" },
      h("h1", { id: "overview-title" }, "Overview"),
      h("label", { class: "inline" }, "Range ", picker),
      custom.element,
      h("label", { class: "inline", title: "Days and hours are bucketed in this time zone" },
        "Time zone ", zonePicker)),
    body);
  // One load at a time: a new range or zone cancels the answers still coming for the old one,
  // so a slow earlier answer never overwrites a newer view.
  let inflight: AbortController | null = null;
  signal.addEventListener("abort", () => inflight?.abort(), { once: true });
  const load = (mode: "push" | "replace" = "replace") => {
    custom.show(picker.value === CUSTOM);
    const chosenSpan = picker.value === CUSTOM ? custom.span() : null;
    writeQuery({
      range: picker.value === DEFAULT_RANGE || (picker.value === CUSTOM && !chosenSpan) ? null : picker.value,
      from: chosenSpan ? utcMinute(chosenSpan.from) : null,
      to: chosenSpan ? utcMinute(chosenSpan.to) : null,
      tz: zonePicker.value === "utc" ? "utc" : null,
    }, mode, signal);
    let span: Span | null;
    let range: Range;
    if (picker.value === CUSTOM) {
      span = custom.span();
      if (span === null) return; // the note says what is missing
      range = { id: CUSTOM, label: "chosen range", hours: 0, increment: incrementFor(span) };
    } else {
      range = RANGES.find((r) => r.id === picker.value) ?? RANGES[1];
      const end = new Date();
      span = { from: new Date(end.getTime() - range.hours * 3600_000), to: end };
    }
    inflight?.abort();
    inflight = new AbortController();
    void render(api, body, range, span, zonePicker.value === "utc", inflight.signal);
  };
  picker.addEventListener("change", () => load("push"));
  zonePicker.addEventListener("change", () => load());
  load();
  return section;
}

async function render(api: Api, body: HTMLElement, range: Range, span: Span, utc: boolean,
  signal: AbortSignal): Promise<void> {
  clear(body, state("loading", "Loading the overview…"));
  body.setAttribute("aria-busy", "true");
  const { from: start, to: end } = span;
  const base = {
    timeFilter: { start: start.toISOString(), end: end.toISOString() },
    dbIncrement: range.increment,
    timeZoneDifference: utc ? 0 : new Date().getTimezoneOffset(),
    filter: "all",
  };
  let all: SeriesAnswer, byModel: SeriesAnswer, byProvider: SeriesAnswer, users: { users: UserRow[] };
  try {
    [all, byModel, byProvider, users] = await Promise.all([
      api.post<SeriesAnswer>("/v1/dashboard/series/query", { ...base, groupBy: null }, signal),
      api.post<SeriesAnswer>("/v1/dashboard/series/query", { ...base, groupBy: "model" }, signal),
      api.post<SeriesAnswer>("/v1/dashboard/series/query", { ...base, groupBy: "provider" }, signal),
      api.post<{ users: UserRow[] }>("/v1/user/metrics/query", {
        filter: "all", offset: 0, limit: 5, sort: { cost: "desc" },
        timeFilter: {
          startTimeUnixSeconds: Math.floor(start.getTime() / 1000),
          endTimeUnixSeconds: Math.ceil(end.getTime() / 1000),
        },
      }, signal),
    ]);
  } catch (error) {
    if (signal.aborted) return;
    body.removeAttribute("aria-busy");
    clear(body, state("error", `Could not load the overview: ${(error as Error).message}`));
    return;
  }
  if (signal.aborted) return;
  body.removeAttribute("aria-busy");
  const series = all.series[0];
  if (!series || series.totals.requests === 0) {
    clear(body, state("empty", `No requests in the ${range.label.toLowerCase()}.`));
    return;
  }
  const t = series.totals;
  const times = series.points.map((p) => Date.parse(p.time) / 1000);
  const pick = (f: (p: Point) => number | null | undefined) => series.points.map((p) => f(p) ?? null);
  const line = (label: string, values: (number | null)[], format: (v: number | null) => string,
    points = false): Line => ({ label, values, format, points });
  clear(body,
    h("div", { class: "cards" },
      card("requests", "Requests", fmt.count(t.requests), t.requests),
      card("cost", "Cost", fmt.usd(t.cost), t.cost),
      card("tokens", "Tokens", fmt.count(t.total_tokens), t.total_tokens,
        `${fmt.count(t.prompt_tokens)} in · ${fmt.count(t.completion_tokens)} out`),
      card("errors", "Errors", fmt.count(t.errors), t.errors, `${fmt.percent(t.error_rate)} of requests`),
      card("latency", "Avg latency", fmt.ms(t.latency.avg), t.latency.avg),
      card("ttft", "Avg time to first token", fmt.ms(t.ttft.avg), t.ttft.avg),
      card("cache", "Cache hits", fmt.count(t.cache_hits), t.cache_hits),
      card("saved", "Saved by the cache", fmt.usd(all.cache_savings?.cost ?? 0),
        all.cache_savings?.cost ?? 0, `${fmt.ms(all.cache_savings?.latency_ms ?? 0)} of waiting`)),
    h("div", { class: "charts" },
      timeChart("Requests", times, [
        line("Requests", pick((p) => p.requests), fmt.count),
        line("Errors", pick((p) => p.errors), fmt.count),
      ], utc),
      timeChart("Cost (USD)", times, [line("Cost", pick((p) => p.cost), fmt.usd)], utc),
      timeChart("Tokens", times, [
        line("Prompt", pick((p) => p.prompt_tokens), fmt.count),
        line("Completion", pick((p) => p.completion_tokens), fmt.count),
      ], utc),
      timeChart("Latency", times, [
        line("p50", pick((p) => p.latency.p50), fmt.ms, true),
        line("p95", pick((p) => p.latency.p95), fmt.ms, true),
      ], utc),
      timeChart("Time to first token", times, [
        line("p50", pick((p) => p.ttft.p50), fmt.ms, true),
        line("p95", pick((p) => p.ttft.p95), fmt.ms, true),
      ], utc)),
    h("div", { class: "tables" },
      breakdown("By model", "Model", byModel),
      breakdown("By provider", "Provider", byProvider),
      topUsers(users.users)));
}

function card(id: string, label: string, text: string, value: number | null, detail?: string): HTMLElement {
  return h("div", { class: "card", "data-metric": id, "data-value": value === null ? "" : String(value) },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value" }, text),
    detail ? h("div", { class: "card-detail muted" }, detail) : null);
}

function breakdown(title: string, column: string, answer: SeriesAnswer): HTMLElement {
  const rows = answer.series.map((s) => h("tr", {},
    h("th", { scope: "row" }, s.other ? "Other" : s.group || "(none)"),
    h("td", { class: "num" }, fmt.count(s.totals.requests)),
    h("td", { class: "num" }, fmt.usd(s.totals.cost)),
    h("td", { class: "num" }, fmt.count(s.totals.total_tokens)),
    h("td", { class: "num" }, fmt.percent(s.totals.error_rate)),
    h("td", { class: "num" }, fmt.ms(s.totals.latency.avg))));
  return h("section", { class: "panel" },
    h("h2", {}, title),
    h("div", { class: "scroll" },
      h("table", {},
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, column), h("th", { scope: "col", class: "num" }, "Requests"),
          h("th", { scope: "col", class: "num" }, "Cost"), h("th", { scope: "col", class: "num" }, "Tokens"),
          h("th", { scope: "col", class: "num" }, "Errors"), h("th", { scope: "col", class: "num" }, "Avg latency"))),
        h("tbody", {}, rows))));
}

function topUsers(users: UserRow[]): HTMLElement {
  return h("section", { class: "panel" },
    h("h2", {}, "Top users by cost"),
    users.length === 0
      ? state("empty", "No requests named a user (Helicone-User-Id) in this range.")
      : h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "User"), h("th", { scope: "col", class: "num" }, "Requests"),
          h("th", { scope: "col", class: "num" }, "Cost"), h("th", { scope: "col" }, "Last seen"))),
        h("tbody", {}, users.map((u) => h("tr", {},
          h("th", { scope: "row" }, u.user_id),
          h("td", { class: "num" }, fmt.count(u.total_requests)),
          h("td", { class: "num" }, fmt.usd(u.cost)),
          h("td", {}, fmt.dateTime(u.last_active))))))));
}
