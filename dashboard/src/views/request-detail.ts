// One request (GET /v1/request/{id}?includeBody=true): its numbers, the cost breakdown, the
// attempts of a routed request, its properties and scores (editable), the conversation
// rendered, the raw request and response bodies, and the HTTP headers: those the gateway
// received and those the provider answered with, as the log keeps them (credentials such as
// Authorization and Helicone-Auth are stored as REDACTED by the log writer, never in clear).

import { Api } from "../api";
import { conversation, pre } from "../chat";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { Attempt, attemptsPanel, costBreakdown, editableTable, HeaderMap, headersPanel } from "./request-extras";
import { statusBadge } from "./requests";

interface Detail {
  request_id: string; request_created_at: string; response_created_at: string | null;
  response_status: number; model: string; provider: string; request_path: string | null;
  target_url: string | null; request_user_id: string | null; delay_ms: number | null;
  time_to_first_token: number | null; prompt_tokens: number | null; completion_tokens: number | null;
  total_tokens: number | null; cost: number | null; cache_reference_id: string | null;
  request_properties: Record<string, string> | null; scores: Record<string, number> | null;
  feedback_rating: boolean | null; request_body: unknown; response_body: unknown;
  prompt_id: string | null; prompt_version: string | null; tokens_estimated?: boolean;
  country_code: string | null; prompt_cache_read_tokens: number | null;
  prompt_cache_write_tokens: number | null; attempts?: Attempt[];
  cache_saved_cost?: number; cache_saved_latency?: number;
  request_headers?: HeaderMap; response_headers?: HeaderMap;
}

export function requestDetail(api: Api, id: string, signal: AbortSignal): HTMLElement {
  const body = h("div", {}, state("loading", "Loading the request…"));
  const section = h("section", { class: "view", "aria-labelledby": "request-title" },
    h("div", { class: "toolbar" },
      h("a", { href: "#/requests", class: "back" }, "← Requests"),
      h("h1", { id: "request-title" }, "Request")),
    body);
  api.get<Detail>(`/v1/request/${encodeURIComponent(id)}?includeBody=true`, signal).then(
    (d) => { if (!signal.aborted) render(api, body, d, signal); },
    (error: Error) => {
      if (!signal.aborted) clear(body, state("error", `Could not load request ${id}: ${error.message}`));
    });
  return section;
}

function render(api: Api, body: HTMLElement, d: Detail, signal: AbortSignal): void {
  const facts: [string, Node | string][] = [
    ["Request id", h("code", {}, d.request_id)],
    ["Status", statusBadge(d.response_status)],
    ["Created", fmt.dateTime(d.request_created_at)],
    ["Model", d.model || "–"],
    ["Provider", d.provider || "–"],
    ["Path", d.request_path || "–"],
    ["User", d.request_user_id || "–"],
    ["Latency", fmt.ms(d.delay_ms)],
    ["Time to first token", fmt.ms(d.time_to_first_token)],
    ["Target", d.target_url || "–"],
    ["Tokens", `${fmt.count(d.prompt_tokens)} in · ${fmt.count(d.completion_tokens)} out · ${fmt.count(d.total_tokens)} total`
      + (d.tokens_estimated ? " (estimated: the provider reported none)" : "")],
    ["Cost", fmt.usd(d.cost)],
    ["Cache", d.cache_reference_id
      ? h("span", {}, "hit, the answer of ",
        h("a", { href: `#/requests/${encodeURIComponent(d.cache_reference_id)}` }, d.cache_reference_id))
      : "miss"],
  ];
  if (d.prompt_id) facts.push(["Prompt", `${d.prompt_id}${d.prompt_version ? ` v${d.prompt_version}` : ""}`]);
  if (d.country_code) facts.push(["Country", d.country_code]);
  const chat = conversation(d.request_body, d.response_body);
  clear(body,
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("div", { class: "tables" },
      costBreakdown(api, d, signal),
      attemptsPanel(d.attempts),
      editableTable(api, "property", d.request_id, d.request_properties ?? {}),
      editableTable(api, "score", d.request_id, d.scores ?? {}),
      feedback(api, d)),
    h("section", { class: "panel" }, h("h2", {}, "Conversation"),
      chat ?? state("empty", "No chat messages in this request; see the raw bodies below.")),
    h("section", { class: "panel" }, h("h2", {}, "Raw bodies"),
      h("details", { open: true }, h("summary", {}, "Request body"), pre(d.request_body ?? null)),
      h("details", {}, h("summary", {}, "Response body"), pre(d.response_body ?? null))),
    headersPanel(d.request_headers, d.response_headers));
}

/** Rate the answer (POST /v1/request/{id}/feedback): the last rating wins. The log records it
 *  a moment later (the scores above show it on the next visit). */
function feedback(api: Api, d: Detail): HTMLElement {
  const note = h("p", { class: "note", role: "status" });
  const buttons: HTMLButtonElement[] = [];
  const show = (rating: boolean | null) => {
    buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(rating === (i === 0))));
  };
  const rate = async (rating: boolean) => {
    buttons.forEach((b) => (b.disabled = true));
    note.className = "note";
    note.textContent = "Saving…";
    try {
      await api.post(`/v1/request/${encodeURIComponent(d.request_id)}/feedback`, { rating });
      show(rating);
      note.textContent = "Saved.";
    } catch (error) {
      note.className = "note error";
      note.textContent = `Not saved: ${(error as Error).message}`;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  buttons.push(
    h("button", { type: "button", id: "feedback-good", onclick: () => void rate(true) }, "✓ Good"),
    h("button", { type: "button", id: "feedback-bad", onclick: () => void rate(false) }, "✕ Bad"));
  show(d.feedback_rating);
  return h("section", { class: "panel" }, h("h2", {}, "Feedback"),
    h("div", { class: "buttons", role: "group", "aria-label": "Rate this answer" }, buttons), note);
}
