// Properties (Helicone-Property-<Name>): the organisation's property names
// (POST /v1/property/query) and, for the chosen one (#/properties/<name>), its values in a
// range with requests, errors, cost, tokens, latency and users (POST /v1/property/values/query).

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { writeQuery } from "../urlstate";
import { latest, listFromQuery, listQuery, rangeOf, rangePicker, requestsLink, table } from "./shared";

interface ValueRow {
  value: string; requests: number; errors: number; cost: number; avg_cost: number;
  total_tokens: number; avg_latency: number | null; p95_latency: number | null; users: number;
  last_seen: string;
}

const MAX_VALUES = 100;

export function properties(api: Api, signal: AbortSignal, chosen: string): HTMLElement {
  const keysBox = h("nav", { class: "property-keys", "aria-label": "Property names" },
    state("loading", "Loading property names…"));
  const values = h("div", { class: "property-values" });
  const next = latest(signal);
  const load = (mode: "push" | "replace" = "replace") => {
    writeQuery(listQuery({ range: picker.value, search: "", page: 0 }), mode, signal);
    for (const link of keysBox.querySelectorAll<HTMLAnchorElement>("a[data-property]")) {
      link.href = propertyHref(link.dataset.property ?? "", picker.value); // another name: same range
    }
    if (chosen) void renderValues(api, values, chosen, rangeOf(picker), next());
  };
  const picker = rangePicker("property-range", listFromQuery().range, () => load("push"));
  api.post<{ property: string }[]>("/v1/property/query", {}, signal).then((keys) => {
    if (signal.aborted) return;
    if (keys.length === 0) {
      clear(keysBox, state("empty", "No custom properties yet: send headers named Helicone-Property-<Name>."));
      clear(values);
      return;
    }
    clear(keysBox, h("ul", {}, keys.map(({ property }) => h("li", {},
      h("a", { href: propertyHref(property, picker.value), "data-property": property,
        "aria-current": property === chosen ? "page" : null }, property)))));
    if (!chosen) clear(values, state("empty", "Choose a property name to see its values."));
  }, (error: Error) => {
    if (!signal.aborted) clear(keysBox, state("error", `Could not load the property names: ${error.message}`));
  });
  load();
  return h("section", { class: "view", "aria-labelledby": "properties-title" },
    h("div", { class: "toolbar" },
      h("h1", { id: "properties-title" }, chosen ? `Property ${chosen}` : "Properties"),
      h("label", { class: "inline" }, "Range ", picker)),
    h("div", { class: "properties-layout" }, h("div", { class: "panel" }, h("h2", {}, "Names"), keysBox),
      h("div", { class: "panel" }, h("h2", {}, "Values"), values)));
}

async function renderValues(api: Api, box: HTMLElement, key: string,
  { range, start, end }: ReturnType<typeof rangeOf>, signal: AbortSignal): Promise<void> {
  box.setAttribute("aria-busy", "true");
  if (!box.querySelector("table")) clear(box, state("loading", `Loading the values of ${key}…`));
  let rows: ValueRow[];
  try {
    rows = await api.post<ValueRow[]>("/v1/property/values/query", {
      property: key, timeFilter: { start: start.toISOString(), end: end.toISOString() }, limit: MAX_VALUES,
    }, signal);
  } catch (error) {
    if (signal.aborted) return;
    box.removeAttribute("aria-busy");
    clear(box, state("error", `Could not load the values of ${key}: ${(error as Error).message}`));
    return;
  }
  if (signal.aborted) return;
  box.removeAttribute("aria-busy");
  if (rows.length === 0) {
    clear(box, state("empty", `No request in the ${range.label.toLowerCase()} has the property ${key}.`));
    return;
  }
  clear(box,
    table<ValueRow>("property-values", [
      { label: "Value", cell: (r) => requestsLink(r.value,
        { field: "properties", key, op: "equals", value: r.value }, range.id,
        `${key} = ${r.value}: show its requests`) },
      { label: "Requests", num: true, cell: (r) => fmt.count(r.requests) },
      { label: "Errors", num: true, cell: (r) => fmt.count(r.errors) },
      { label: "Cost", num: true, cell: (r) => fmt.usd(r.cost) },
      { label: "Avg cost", num: true, cell: (r) => fmt.usd(r.avg_cost) },
      { label: "Tokens", num: true, cell: (r) => fmt.count(r.total_tokens) },
      { label: "Avg latency", num: true, cell: (r) => fmt.ms(r.avg_latency) },
      { label: "p95 latency", num: true, cell: (r) => fmt.ms(r.p95_latency) },
      { label: "Users", num: true, cell: (r) => fmt.count(r.users) },
      { label: "Last seen", cell: (r) => fmt.dateTime(r.last_seen) },
    ], rows, (r) => ({ "data-value": r.value, "data-requests": String(r.requests), "data-cost": String(r.cost) })),
    rows.length === MAX_VALUES ? h("p", { class: "muted" }, `The ${MAX_VALUES} values with the most requests.`) : null);
}

function propertyHref(name: string, range: string): string {
  const query = listQuery({ range, search: "", page: 0 }).range;
  return `#/properties/${encodeURIComponent(name)}${query ? `?range=${query}` : ""}`;
}
