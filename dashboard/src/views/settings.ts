// Settings: the organisation's gateway keys (create with scopes, the key shown once; revoke),
// its provider keys (BYOK: masked list, add, re-validate, delete), its credit balance, and the
// response cache's and rate limiter's counters.
//
// APIs: /v1/gateway-keys (gateway/api/gateway_keys.py; managing keys needs a full-access key),
// /api/environments/@current/llm_analytics/provider_keys/ (gateway/api/provider_keys.py),
// /v1/credits/balance, and /healthz (public counters of this gateway process).

import { Api, ApiError } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";

interface GatewayKey {
  id: string; name: string | null; prefix: string; scopes: string[] | null;
  created_at: string; revoked_at: string | null; active: boolean;
}
interface ProviderKey {
  id: string; provider: string; name: string; state: string; error_message: string | null;
  api_key_masked: string; is_default: boolean; created_at: string;
  last_validated_at: string | null; base_url: string | null;
}
interface Budget { scope: string; subject: string; period: string; limit_usd: string; spent_usd: string }
interface Balance {
  account: { balance_usd: string; reserved_usd: string; available_usd: string; updated_at: string } | null;
  budgets: Budget[];
}
type Counters = Record<string, unknown>;

/** The scopes a key can be given here (gateway:admin only by the operator's CLI). */
export const SCOPES: [string, string][] = [
  ["gateway:invoke", "send requests through the gateway"],
  ["trace:read", "read the request log and analytics (and this dashboard)"],
  ["trace:write", "log without proxying, properties, feedback"],
  ["prompt:read", "read prompts, use prompt_id"],
  ["prompt:write", "create and change prompts"],
  ["provider_key:read", "list provider keys"],
  ["provider_key:write", "add, change and delete provider keys"],
  ["evaluation:read", "read evaluations"],
  ["evaluation:write", "scores and ratings"],
  ["review:read", "read reviews"],
  ["review:write", "write reviews"],
];

/** Providers that need only an API key (and, optionally, a base URL). */
const PROVIDERS = ["openai", "anthropic", "gemini", "groq", "mistral", "xai", "deepseek",
  "openrouter", "together_ai", "fireworks", "perplexity", "deepinfra", "cerebras", "nebius",
  "novita", "hyperbolic", "nvidia", "ollama"];

const PROVIDER_KEYS = "/api/environments/@current/llm_analytics/provider_keys/";

export function settings(api: Api, signal: AbortSignal): HTMLElement {
  const keys = h("section", { class: "panel", "aria-labelledby": "keys-title" });
  const providers = h("section", { class: "panel", "aria-labelledby": "providers-title" });
  const credits = h("section", { class: "panel", "aria-labelledby": "credits-title" });
  const stats = h("section", { class: "panel", "aria-labelledby": "stats-title" });
  void gatewayKeys(api, keys, signal);
  void providerKeys(api, providers, signal);
  void balance(api, credits, signal);
  void counters(api, stats, signal);
  return h("section", { class: "view settings", "aria-labelledby": "settings-title" },
    h("div", { class: "toolbar" }, h("h1", { id: "settings-title" }, "Settings")),
    keys, providers, h("div", { class: "tables" }, credits, stats));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// --- gateway keys --------------------------------------------------------------------------

async function gatewayKeys(api: Api, panel: HTMLElement, signal: AbortSignal): Promise<void> {
  const title = h("h2", { id: "keys-title" }, "Gateway keys");
  const list = h("div", { class: "scroll", id: "gateway-keys" });
  const shown = h("div", { id: "new-key", "aria-live": "polite" });
  const form = createKeyForm(api, shown, () => void load());
  clear(panel, title,
    h("p", { class: "muted" }, "Keys of this organisation. A new key is shown once: copy it " +
      "before leaving this page. Managing keys needs a full-access key."),
    shown, list, form);

  async function load(): Promise<void> {
    clear(list, state("loading", "Loading the gateway keys…"));
    let rows: GatewayKey[];
    try {
      rows = await api.get<GatewayKey[]>("/v1/gateway-keys", signal);
    } catch (error) {
      if (signal.aborted) return;
      clear(list, state("error", `Could not load the gateway keys: ${message(error)}`));
      if (error instanceof ApiError && error.status === 403) form.hidden = true;
      return;
    }
    if (signal.aborted) return;
    if (rows.length === 0) {
      clear(list, state("empty", "No gateway keys yet."));
      return;
    }
    clear(list, h("table", { "aria-label": "Gateway keys" },
      h("thead", {}, h("tr", {}, ["Name", "Prefix", "Scopes", "Created", "Status", ""].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((k) => h("tr", { "data-key-id": k.id },
        h("th", { scope: "row" }, k.name ?? "–"),
        h("td", {}, h("code", {}, k.prefix)),
        h("td", { class: "wrap" }, k.scopes === null ? "full access" : k.scopes.join(", ")),
        h("td", {}, fmt.dateTime(k.created_at)),
        h("td", {}, k.active
          ? h("span", { class: "badge badge-ok" }, "active")
          : h("span", { class: "badge badge-error" }, `revoked ${fmt.dateTime(k.revoked_at)}`)),
        h("td", {}, k.active ? revokeButton(api, k, () => void load()) : ""))))));
  }
  await load();
}

/** Revoking takes two clicks (Revoke, then Confirm), with no browser dialog. */
function revokeButton(api: Api, key: GatewayKey, done: () => void): HTMLElement {
  const cell = h("span", { class: "buttons" });
  const ask = h("button", { type: "button", class: "danger", onclick: () => {
    const status = h("span", { role: "status" });
    const confirm = h("button", { type: "button", class: "danger", onclick: async () => {
      confirm.disabled = true;
      try {
        await api.del(`/v1/gateway-keys/${encodeURIComponent(key.id)}`);
        done();
      } catch (error) {
        clear(status, state("error", `Could not revoke: ${message(error)}`));
        confirm.disabled = false;
      }
    } }, `Confirm: revoke ${key.prefix}`);
    const cancel = h("button", { type: "button", onclick: () => clear(cell, ask) }, "Cancel");
    clear(cell, confirm, cancel, status);
    confirm.focus();
  } }, "Revoke");
  cell.append(ask);
  return cell;
}

function createKeyForm(api: Api, shown: HTMLElement, done: () => void): HTMLFormElement {
  const name = h("input", { id: "key-name", name: "name", maxlength: 200, autocomplete: "off" });
  const full = h("input", { type: "checkbox", id: "key-full", checked: true });
  const boxes = SCOPES.map(([scope, what]) => h("label", { class: "scope" },
    h("input", { type: "checkbox", name: "scope", value: scope }), h("code", {}, scope),
    h("span", { class: "muted" }, ` ${what}`)));
  const scopeList = h("fieldset", { class: "scopes", hidden: true },
    h("legend", {}, "Scopes"), boxes);
  full.addEventListener("change", () => { scopeList.hidden = full.checked; });
  const note = h("p", { class: "note", role: "status" });
  const submit = h("button", { type: "submit" }, "Create key");
  const form = h("form", { class: "stack", "aria-label": "Create a gateway key" },
    h("h3", {}, "Create a key"),
    h("label", { class: "inline" }, "Name ", name),
    h("label", { class: "inline" }, full, "Full access (every scope but the operator's admin)"),
    scopeList, h("div", { class: "buttons" }, submit), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scopes = full.checked ? null
      : [...scopeList.querySelectorAll<HTMLInputElement>("input:checked")].map((i) => i.value);
    if (scopes !== null && scopes.length === 0) {
      note.className = "note error";
      note.textContent = "Choose at least one scope, or full access.";
      return;
    }
    submit.disabled = true;
    note.className = "note";
    note.textContent = "Creating…";
    try {
      const created = await api.plain<{ key: string; data: GatewayKey }>(
        "POST", "/v1/gateway-keys", { name: name.value, scopes });
      note.textContent = "";
      showOnce(shown, created.key, created.data);
      name.value = "";
      done();
    } catch (error) {
      note.className = "note error";
      note.textContent = `Could not create the key: ${message(error)}`;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** The new key, in a read-only field (never in a URL or storage), until dismissed. */
function showOnce(shown: HTMLElement, key: string, record: GatewayKey): void {
  const field = h("input", { id: "created-key", readonly: true, value: key, size: 40,
    "aria-label": "The new key", spellcheck: "false", autocomplete: "off" });
  const copied = h("span", { role: "status" });
  const copy = h("button", { type: "button", onclick: async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(key);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Select the key and copy it (the browser refused the clipboard).";
    }
  } }, "Copy");
  const dismiss = h("button", { type: "button", onclick: () => clear(shown) }, "Done, hide it");
  clear(shown, h("div", { class: "once" },
    h("p", {}, h("strong", {}, `Key ${record.name ?? record.prefix} created. `),
      "Copy it now: it is not shown again."),
    h("div", { class: "buttons" }, field, copy, dismiss), copied));
  field.focus();
  field.select();
}

// --- provider keys -------------------------------------------------------------------------

async function providerKeys(api: Api, panel: HTMLElement, signal: AbortSignal): Promise<void> {
  const list = h("div", { class: "scroll", id: "provider-keys" });
  const form = providerKeyForm(api, () => void load());
  clear(panel, h("h2", { id: "providers-title" }, "Provider keys (bring your own key)"),
    h("p", { class: "muted" }, "Requests go out with these keys before the gateway's own. " +
      "A key is checked with the provider when added; only its mask is ever shown."),
    list, form);

  async function load(): Promise<void> {
    clear(list, state("loading", "Loading the provider keys…"));
    let rows: ProviderKey[];
    try {
      rows = (await api.plain<{ results: ProviderKey[] }>("GET", `${PROVIDER_KEYS}?limit=100`,
        undefined, signal)).results;
    } catch (error) {
      if (signal.aborted) return;
      clear(list, state("error", `Could not load the provider keys: ${message(error)}`));
      return;
    }
    if (signal.aborted) return;
    if (rows.length === 0) {
      clear(list, state("empty", "No provider keys: requests use the gateway's own keys."));
      return;
    }
    clear(list, h("table", { "aria-label": "Provider keys" },
      h("thead", {}, h("tr", {}, ["Name", "Provider", "Key", "State", "Added", ""].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((k) => providerRow(api, k, () => void load())))));
  }
  await load();
}

function providerRow(api: Api, key: ProviderKey, reload: () => void): HTMLElement {
  const status = h("span", { role: "status" });
  const path = `${PROVIDER_KEYS}${encodeURIComponent(key.id)}/`;
  const act = (label: string, work: () => Promise<unknown>) => {
    const button = h("button", { type: "button", onclick: async () => {
      button.disabled = true;
      status.textContent = `${label}…`;
      try {
        await work();
        reload();
      } catch (error) {
        clear(status, state("error", `${label} failed: ${message(error)}`));
        button.disabled = false;
      }
    } }, label);
    return button;
  };
  const badge = key.state === "ok" ? "badge-ok" : key.state === "unknown" ? "badge-pending" : "badge-error";
  return h("tr", { "data-provider-key-id": key.id },
    h("th", { scope: "row" }, key.name, key.is_default ? h("span", { class: "muted" }, " (default)") : ""),
    h("td", {}, key.provider),
    h("td", {}, h("code", {}, key.api_key_masked)),
    h("td", { class: "wrap" }, h("span", { class: `badge ${badge}` }, key.state),
      key.error_message ? h("span", { class: "muted" }, ` ${key.error_message}`) : ""),
    h("td", {}, fmt.dateTime(key.created_at)),
    h("td", {}, h("span", { class: "buttons" },
      act("Validate", () => api.plain("POST", `${path}validate/`, {})),
      confirmed(`Delete ${key.name}`, act("Delete", () => api.plain("DELETE", path))), status)));
}

/** `button` behind a first click that asks (no browser dialog): Delete, then Confirm. */
function confirmed(question: string, button: HTMLButtonElement): HTMLElement {
  const cell = h("span", { class: "buttons" });
  button.classList.add("danger");
  button.textContent = `Confirm: ${question.charAt(0).toLowerCase()}${question.slice(1)}`;
  const ask = h("button", { type: "button", class: "danger", onclick: () => {
    const cancel = h("button", { type: "button", onclick: () => { clear(cell, ask); ask.focus(); } }, "Cancel");
    clear(cell, button, cancel);
    button.focus();
  } }, question.split(" ")[0]);
  cell.append(ask);
  return cell;
}

function providerKeyForm(api: Api, done: () => void): HTMLFormElement {
  const provider = h("select", { id: "provider", name: "provider" },
    PROVIDERS.map((p) => h("option", { value: p }, p)));
  const name = h("input", { id: "provider-name", name: "name", required: true, maxlength: 255 });
  const secret = h("input", { id: "provider-secret", name: "api_key", type: "password",
    required: true, autocomplete: "off", spellcheck: "false" });
  const baseUrl = h("input", { id: "provider-base-url", name: "base_url", type: "url",
    placeholder: "optional", size: 30 });
  const note = h("p", { class: "note", role: "status" });
  const submit = h("button", { type: "submit" }, "Add key");
  const form = h("form", { class: "stack", "aria-label": "Add a provider key" },
    h("h3", {}, "Add a provider key"),
    h("div", { class: "buttons" },
      h("label", { class: "inline" }, "Provider ", provider),
      h("label", { class: "inline" }, "Name ", name),
      h("label", { class: "inline" }, "API key ", secret),
      h("label", { class: "inline" }, "Base URL ", baseUrl)),
    h("div", { class: "buttons" }, submit), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    note.className = "note";
    note.textContent = "Checking the key with the provider…";
    const body: Record<string, unknown> = {
      provider: provider.value, name: name.value.trim(), api_key: secret.value,
    };
    if (baseUrl.value.trim()) body.base_url = baseUrl.value.trim();
    try {
      await api.plain("POST", PROVIDER_KEYS, body);
      note.textContent = `Added ${name.value.trim()}.`;
      secret.value = "";
      name.value = "";
      done();
    } catch (error) {
      note.className = "note error";
      note.textContent = `Could not add the key: ${message(error)}`;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// --- credits and counters ------------------------------------------------------------------

async function balance(api: Api, panel: HTMLElement, signal: AbortSignal): Promise<void> {
  const body = h("div", { id: "credits" }, state("loading", "Loading the balance…"));
  clear(panel, h("h2", { id: "credits-title" }, "Credits"), body);
  let answer: Balance;
  try {
    answer = await api.get<Balance>("/v1/credits/balance", signal);
  } catch (error) {
    if (!signal.aborted) clear(body, state("error", `Could not load the balance: ${message(error)}`));
    return;
  }
  if (signal.aborted) return;
  const account = answer.account;
  clear(body,
    account === null
      ? state("empty", "This organisation has no credit account: its requests are not metered.")
      : facts([
        ["Balance", fmt.usd(Number(account.balance_usd))],
        ["Held for requests in flight", fmt.usd(Number(account.reserved_usd))],
        ["Available", fmt.usd(Number(account.available_usd))],
        ["Updated", fmt.dateTime(account.updated_at)],
      ]),
    answer.budgets.length === 0 ? h("p", { class: "muted" }, "No budgets.")
      : h("table", { "aria-label": "Budgets" },
        h("thead", {}, h("tr", {}, ["Budget", "Period", "Spent", "Limit"].map(
          (c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, answer.budgets.map((b) => h("tr", {},
          h("th", { scope: "row" }, b.scope === "org" ? "organisation" : `${b.scope} ${b.subject}`),
          h("td", {}, b.period),
          h("td", { class: "num" }, fmt.usd(Number(b.spent_usd))),
          h("td", { class: "num" }, fmt.usd(Number(b.limit_usd))))))));
}

async function counters(api: Api, panel: HTMLElement, signal: AbortSignal): Promise<void> {
  const body = h("div", { id: "counters" }, state("loading", "Loading the counters…"));
  clear(panel, h("h2", { id: "stats-title" }, "Cache and rate limits"),
    h("p", { class: "muted" }, "Counters of the gateway process that answered (since it started)."),
    body);
  let health: Counters;
  try {
    health = await api.plain<Counters>("GET", "/healthz", undefined, signal);
  } catch (error) {
    if (!signal.aborted) clear(body, state("error", `Could not load the counters: ${message(error)}`));
    return;
  }
  if (signal.aborted) return;
  const group = (title: string, values: unknown, extra: [string, string][] = []) => {
    if (!values || typeof values !== "object") return null;
    return h("div", { "data-group": title }, h("h3", {}, title),
      facts([...Object.entries(values as Counters).map(([k, v]): [string, string] =>
        [k.replace(/_/g, " "), typeof v === "number" ? fmt.count(v) : String(v)]), ...extra]));
  };
  // The cache's hit rate: hits over the lookups that found or missed (– before the first).
  const cache = (health.cache ?? {}) as Counters;
  const hits = typeof cache.hits === "number" ? cache.hits : 0;
  const lookups = hits + (typeof cache.misses === "number" ? cache.misses : 0);
  const parts = [group("Response cache", health.cache, [["hit rate", lookups ? fmt.percent(hits / lookups) : "–"]]),
    group("Rate limits", health.ratelimit),
    group("Redis", health.redis)].filter((p) => p !== null);
  clear(body, parts.length ? parts : state("empty", "This gateway reports no counters."));
}

function facts(rows: [string, string][]): HTMLElement {
  return h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
