// The request page's panels beyond the facts and the chat: the cost breakdown (the request's
// tokens by kind × the model's list price from the public model registry), the attempts of a
// routed request (failover), the HTTP headers the log kept, and the editors of its scores and
// properties.

import { Api } from "../api";
import { h, state } from "../dom";
import * as fmt from "../format";
import { statusBadge } from "./requests";

export interface Attempt { source: string; status: number; latency_ms: number | null }

/** What the breakdown needs of a request (GET /v1/request/{id}). */
export interface Usage {
  request_id: string; model: string; provider: string; cost: number | null;
  prompt_tokens: number | null; completion_tokens: number | null;
  prompt_cache_read_tokens: number | null; prompt_cache_write_tokens: number | null;
  cache_reference_id: string | null; cache_saved_cost?: number; cache_saved_latency?: number;
}

/** `SimplifiedPricing` of the registry: USD per 1M tokens. */
interface Pricing { prompt: number; completion: number; cacheRead?: number; cacheWrite?: number }
interface Registry { models: { id: string; endpoints: { provider: string; pricing: Pricing }[] }[] }

/** The model's price at the request's provider (the first listed if the provider is not). */
function priceOf(registry: Registry, model: string, provider: string): Pricing | null {
  const found = registry.models.find((m) => m.id === model);
  if (!found || found.endpoints.length === 0) return null;
  const wanted = provider.toLowerCase();
  return (found.endpoints.find((e) => e.provider.toLowerCase() === wanted) ?? found.endpoints[0]).pricing;
}

/** The tokens by kind: the prompt count includes the cache reads and writes (as providers
 *  report it), so the uncached prompt line is what is left of it. */
export function tokenLines(u: Usage): [string, number, keyof Pricing][] {
  const read = u.prompt_cache_read_tokens ?? 0;
  const write = u.prompt_cache_write_tokens ?? 0;
  const prompt = Math.max(0, (u.prompt_tokens ?? 0) - read - write);
  return [
    ["Prompt", prompt, "prompt"], ["Cache read", read, "cacheRead"],
    ["Cache write", write, "cacheWrite"], ["Completion", u.completion_tokens ?? 0, "completion"],
  ];
}

export function costBreakdown(api: Api, u: Usage, signal: AbortSignal): HTMLElement {
  const table = h("div", {}, state("loading", "Loading the prices…"));
  const draw = (pricing: Pricing | null) => {
    const rows = tokenLines(u).map(([label, tokens, key]) => {
      const price = pricing?.[key];
      const usd = price === undefined ? null : (tokens * price) / 1_000_000;
      return h("tr", {}, h("th", { scope: "row" }, label), h("td", { class: "num" }, fmt.count(tokens)),
        h("td", { class: "num" }, price === undefined ? "–" : `${fmt.usd(price)} / 1M`),
        h("td", { class: "num" }, fmt.usd(usd)));
    });
    const saved = u.cache_reference_id
      ? h("p", { id: "cache-saved" }, `Cache hit: saved ${fmt.usd(u.cache_saved_cost ?? 0)} and `
        + `${fmt.ms(u.cache_saved_latency ?? 0)}.`)
      : "";
    table.replaceChildren(h("table", { id: "cost-breakdown" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Tokens"), h("th", { scope: "col", class: "num" }, "Count"),
        h("th", { scope: "col", class: "num" }, "List price"), h("th", { scope: "col", class: "num" }, "Cost"))),
      h("tbody", {}, rows,
        h("tr", {}, h("th", { scope: "row" }, "Recorded cost"), h("td", {}), h("td", {}),
          h("td", { class: "num", id: "recorded-cost" }, fmt.usd(u.cost))))),
    h("p", { class: "muted" }, pricing
      ? "Counts × today's list price; the recorded cost was computed when the request ran "
        + "(price tiers and the price of that day), and is the one billed."
      : `No list price for ${u.model || "this model"} in the model registry.`), saved);
  };
  api.get<Registry>("/v1/public/model-registry/models", signal).then(
    (registry) => { if (!signal.aborted) draw(priceOf(registry, u.model, u.provider)); },
    () => { if (!signal.aborted) draw(null); });
  return h("section", { class: "panel" }, h("h2", {}, "Cost breakdown"), table);
}

export function attemptsPanel(attempts: Attempt[] | undefined): HTMLElement {
  const list = attempts ?? [];
  return h("section", { class: "panel" }, h("h2", {}, "Attempts and fallbacks"),
    list.length === 0
      ? h("p", { class: "muted" }, "One attempt: the request was not routed through a fallback chain.")
      : h("table", { id: "attempts" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col" }, "Source"),
          h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Latency"))),
        h("tbody", {}, list.map((a, i) => h("tr", {}, h("td", { class: "num" }, i + 1),
          h("td", {}, a.source), h("td", {}, statusBadge(a.status)),
          h("td", { class: "num" }, fmt.ms(a.latency_ms)))))));
}

/** Header name → value, as the log stores it (names lower-case, credentials REDACTED). */
export type HeaderMap = Record<string, string> | null | undefined;

/** The request's headers as the gateway received them and the provider's response headers,
 *  each a collapsible table; null means the log did not keep them, said in words. */
export function headersPanel(request: HeaderMap, response: HeaderMap): HTMLElement {
  return h("section", { class: "panel" }, h("h2", {}, "Headers"),
    headerTable("request-headers", "Request headers", request,
      "No request headers kept: the request omitted them (Helicone-Omit-Request), was logged "
      + "rather than sent through the gateway, or was recorded before the log kept headers."),
    headerTable("response-headers", "Response headers", response,
      "No response headers kept: no provider answered (the gateway made the error itself), the "
      + "response was omitted (Helicone-Omit-Response), the call was logged rather than sent "
      + "through the gateway, or it was recorded before the log kept headers."));
}

function headerTable(id: string, title: string, headers: HeaderMap, empty: string): HTMLElement {
  const entries = Object.entries(headers ?? {});
  return h("details", { id },
    h("summary", {}, headers ? `${title} (${entries.length})` : `${title} (not kept)`),
    entries.length === 0
      ? state("empty", empty)
      : h("table", { class: "headers" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"))),
        h("tbody", {}, entries.map(([name, value]) =>
          h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, value))))));
}

/** A table of name → value with a form that writes one more (or a new value of one): scores
 *  (POST /v1/request/{id}/score, numbers) or properties (PUT /v1/request/{id}/property). */
export function editableTable(api: Api, kind: "score" | "property", requestId: string,
  initial: Record<string, string | number>): HTMLElement {
  const values = new Map(Object.entries(initial).map(([k, v]) => [k, String(v)]));
  const tbody = h("tbody", {});
  const empty = h("p", { class: "muted" }, kind === "score" ? "No scores or feedback." : "No properties.");
  const redraw = () => {
    tbody.replaceChildren(...[...values].map(([k, v]) =>
      h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))));
    empty.hidden = values.size > 0;
  };
  const name = h("input", { name: "name", required: true, maxlength: 200, "aria-label": `${kind} name` });
  const value = kind === "score"
    ? h("input", { name: "value", type: "number", step: "any", required: true, "aria-label": "score value" })
    : h("input", { name: "value", required: true, "aria-label": "property value" });
  const note = h("p", { class: "note", role: "status" });
  const submit = h("button", { type: "submit" }, kind === "score" ? "Save score" : "Save property");
  const form = h("form", { class: "stack", id: `${kind}-form`, "aria-label": `Add a ${kind}` },
    h("label", { class: "inline" }, "Name ", name), h("label", { class: "inline" }, "Value ", value),
    h("div", { class: "buttons" }, submit), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = name.value.trim();
    const id = encodeURIComponent(requestId);
    submit.disabled = true;
    note.className = "note";
    note.textContent = "Saving…";
    try {
      if (kind === "score") {
        const number = Number(value.value);
        if (!Number.isFinite(number)) throw new Error("the value must be a number");
        await api.post(`/v1/request/${id}/score`, { scores: { [key]: number } });
        values.set(key, String(number));
      } else {
        await api.put(`/v1/request/${id}/property`, { key, value: value.value });
        values.set(key, value.value);
      }
      redraw();
      name.value = "";
      value.value = "";
      note.textContent = "Saved: the log shows it in a moment.";
    } catch (error) {
      note.className = "note error";
      note.textContent = `Not saved: ${(error as Error).message}`;
    } finally {
      submit.disabled = false;
    }
  });
  redraw();
  return h("section", { class: "panel" }, h("h2", {}, kind === "score" ? "Scores" : "Properties"),
    h("table", { id: `${kind}-table` }, tbody), empty, form);
}
