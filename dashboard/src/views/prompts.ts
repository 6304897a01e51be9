// Prompts: the organisation's managed prompts (/v1/prompt-2025/…, gateway/api/prompts_helicone.py).
// A prompt's versions with their environments and a line diff against the version before; an
// editor of the version's body (an OpenAI chat request) that finds its {{hc:name:type}}
// variables, publishes a new version and deploys a version to an environment; a playground
// that runs a version with inputs through the gateway via POST /dashboard/api/playground (the
// server runs it for the signed-in key: no key reaches this page).

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { currentQuery, writeQuery } from "../urlstate";

interface Prompt { id: string; name: string; tags: string[]; created_at: string }
interface Version {
  id: string; model: string; prompt_id: string; major_version: number; minor_version: number;
  commit_message: string; environments: string[]; created_at: string;
  prompt_body?: Record<string, unknown>;
}
interface Variable { name: string; type: string }
interface PlaygroundAnswer { status: number; body: unknown }

const VARIABLE = /\{\{\s*hc\s*:\s*([a-zA-Z_-][a-zA-Z0-9_-]*)\s*:\s*([a-zA-Z_-][a-zA-Z0-9_-]*)\s*\}\}/g;

/** The distinct {{hc:name:type}} variables of a template text, in order of appearance. */
export function variables(text: string): Variable[] {
  const seen = new Map<string, string>();
  for (const match of text.matchAll(VARIABLE)) {
    if (!seen.has(match[1])) seen.set(match[1], match[2]);
  }
  return [...seen].map(([name, type]) => ({ name, type }));
}

/** A line diff (longest common subsequence): each line kept, added or removed. */
export function diffLines(before: string, after: string): ["=" | "+" | "-", string][] {
  const a = before.split("\n"), b = after.split("\n");
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: ["=" | "+" | "-", string][] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { out.push(["=", a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < a.length) out.push(["-", a[i++]]);
  while (j < b.length) out.push(["+", b[j++]]);
  return out;
}

const label = (v: Version) => `v${v.major_version}.${v.minor_version}`;
const pretty = (body: unknown) => JSON.stringify(body ?? {}, null, 2);
const failed = (what: string, error: unknown) => state("error", `${what}: ${(error as Error).message}`);

export function prompts(api: Api, signal: AbortSignal, id: string): HTMLElement {
  const list = h("div", { id: "prompt-list" }, state("loading", "Loading prompts…"));
  const detail = h("div", { id: "prompt-detail" });
  const section = h("section", { class: "view", "aria-labelledby": "prompts-title" },
    h("div", { class: "toolbar" }, h("h1", { id: "prompts-title" }, "Prompts")),
    h("div", { class: "split" }, h("aside", { class: "panel" }, h("h2", {}, "Prompts"), list,
      newPromptForm(api)), detail));
  void (async () => {
    let found: Prompt[];
    try {
      found = await api.post<Prompt[]>("/v1/prompt-2025/query", { pageSize: 100 }, signal);
    } catch (error) {
      if (!signal.aborted) clear(list, failed("Could not load prompts", error));
      return;
    }
    if (signal.aborted) return;
    clear(list, found.length === 0 ? state("empty", "No prompts yet.")
      : h("ul", { class: "plain" }, found.map((p) => h("li", {},
        h("a", { href: `#/prompts/${encodeURIComponent(p.id)}`, "data-prompt-id": p.id,
          "aria-current": p.id === id ? "page" : null }, p.name),
        p.tags.length ? h("span", { class: "muted" }, ` ${p.tags.join(", ")}`) : ""))));
  })();
  if (id) void promptDetail(api, detail, id, signal);
  else clear(detail, h("p", { class: "muted" }, "Choose a prompt to see its versions."));
  return section;
}

function newPromptForm(api: Api): HTMLElement {
  const name = h("input", { id: "new-prompt-name", required: true, maxlength: 255, "aria-label": "New prompt name" });
  const note = h("p", { class: "note", role: "status" });
  const form = h("form", { class: "stack", "aria-label": "New prompt" }, h("h3", {}, "New prompt"),
    name, h("button", { type: "submit" }, "Create"), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api.post<{ id: string }>("/v1/prompt-2025", { name: name.value.trim(),
        promptBody: { model: "gpt-4o-mini", messages: [
          { role: "system", content: "You are a helpful assistant." },
          { role: "user", content: "{{hc:question:string}}" }] } });
      location.hash = `#/prompts/${encodeURIComponent(made.id)}`;
    } catch (error) {
      note.className = "note error";
      note.textContent = `Not created: ${(error as Error).message}`;
    }
  });
  return form;
}

async function promptDetail(api: Api, box: HTMLElement, id: string, signal: AbortSignal): Promise<void> {
  clear(box, state("loading", "Loading the versions…"));
  let prompt: Prompt, versions: Version[];
  try {
    [prompt, versions] = await Promise.all([
      api.get<Prompt>(`/v1/prompt-2025/id/${encodeURIComponent(id)}`, signal),
      api.post<Version[]>("/v1/prompt-2025/query/versions", { promptId: id }, signal),
    ]);
  } catch (error) {
    if (!signal.aborted) clear(box, failed("Could not load the prompt", error));
    return;
  }
  if (signal.aborted) return;
  if (versions.length === 0) {
    clear(box, h("h2", {}, prompt.name), state("empty", "This prompt has no versions."));
    return;
  }
  const versionBox = h("div", { id: "version" });
  const rows = versions.map((v) => h("tr", { "data-version-id": v.id },
    h("th", { scope: "row" }, h("button", { type: "button", class: "quiet link",
      onclick: () => void show(v) }, label(v))),
    h("td", {}, v.environments.map((e) => h("span", { class: "badge badge-ok" }, e))),
    h("td", {}, v.model || "–"),
    h("td", { class: "wrap" }, v.commit_message || "–"),
    h("td", {}, fmt.dateTime(v.created_at))));
  clear(box, h("h2", { id: "prompt-name" }, prompt.name),
    h("div", { class: "panel scroll" }, h("table", { "aria-label": "Versions" },
      h("thead", {}, h("tr", {}, ["Version", "Environments", "Model", "Message", "Created"].map(
        (c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))),
    versionBox);

  const bodyOf = async (v: Version) => (await api.post<Version>("/v2/prompt-2025/query/version",
    { promptVersionId: v.id }, signal)).prompt_body ?? {};

  async function show(version: Version): Promise<void> {
    // The version shown is in the URL (`#/prompts/<id>?version=<id>`), the newest left out.
    writeQuery({ version: version === versions[0] ? null : version.id }, "replace", signal);
    rows.forEach((r) => r.classList.toggle("selected", r.dataset.versionId === version.id));
    clear(versionBox, state("loading", `Loading ${label(version)}…`));
    const index = versions.indexOf(version);
    const previous = versions[index + 1]; // newest first
    let body: Record<string, unknown>, before: Record<string, unknown> | null = null;
    try {
      [body, before] = await Promise.all([bodyOf(version), previous ? bodyOf(previous) : null]);
    } catch (error) {
      if (!signal.aborted) clear(versionBox, failed("Could not load the version", error));
      return;
    }
    if (signal.aborted) return;
    clear(versionBox, versionPanels(api, id, version, body, before, previous, () =>
      void promptDetail(api, box, id, signal)));
  }
  const wanted = currentQuery().get("version");
  void show(versions.find((v) => v.id === wanted) ?? versions[0]);
}

function versionPanels(api: Api, promptId: string, version: Version, body: Record<string, unknown>,
  before: Record<string, unknown> | null, previous: Version | undefined, reload: () => void): HTMLElement[] {
  const text = pretty(body);
  // Diff against the version before.
  const diff = before === null
    ? h("p", { class: "muted" }, "The first version: nothing to compare with.")
    : h("pre", { class: "raw diff", "aria-label": `Changes from ${previous ? label(previous) : ""}` },
      diffLines(pretty(before), text).map(([kind, line]) =>
        h("span", { class: `diff-${kind === "+" ? "add" : kind === "-" ? "del" : "same"}` },
          `${kind === "=" ? " " : kind} ${line}`)));

  // Editor with variable detection and publishing.
  const editor = h("textarea", { id: "prompt-editor", rows: 14, spellcheck: "false",
    "aria-label": "The version's body (an OpenAI chat request, JSON)" });
  editor.value = text;
  const found = h("p", { id: "prompt-variables" });
  const inputs = h("div", { class: "stack", id: "playground-inputs" });
  const refresh = () => {
    const vars = variables(editor.value);
    clear(found, vars.length === 0 ? "No variables." : ["Variables: ", ...vars.flatMap((v, i) =>
      [i ? ", " : "", h("code", {}, `${v.name}: ${v.type}`)])]);
    const values = new Map([...inputs.querySelectorAll<HTMLInputElement>("input")].map((i) => [i.name, i.value]));
    clear(inputs, vars.map((v) => h("label", { class: "inline" }, `${v.name} (${v.type}) `,
      h("input", { name: v.name, "data-variable": v.name, value: values.get(v.name) ?? "" }))));
  };
  editor.addEventListener("input", refresh);
  refresh();
  const message = h("input", { id: "commit-message", placeholder: "what changed", "aria-label": "Commit message" });
  const note = h("p", { class: "note", role: "status" });
  const say = (t: string, error = false) => { note.className = error ? "note error" : "note"; note.textContent = t; };
  const publish = async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(editor.value);
    } catch (error) {
      say(`The body is not valid JSON: ${(error as Error).message}`, true);
      return;
    }
    try {
      await api.post("/v1/prompt-2025/update", { promptId, promptVersionId: version.id,
        promptBody: parsed, commitMessage: message.value });
      reload();
    } catch (error) {
      say(`Not published: ${(error as Error).message}`, true);
    }
  };
  const environment = h("input", { id: "environment", value: "production", "aria-label": "Environment",
    pattern: "[A-Za-z0-9_\\-]{1,64}", size: 12 });
  const deploy = async () => {
    try {
      await api.post("/v1/prompt-2025/update/environment", { promptId, promptVersionId: version.id,
        environment: environment.value.trim() });
      reload();
    } catch (error) {
      say(`Not deployed: ${(error as Error).message}`, true);
    }
  };

  // Playground.
  const answer = h("div", { id: "playground-answer", "aria-live": "polite" });
  const run = async () => {
    const values: Record<string, string> = {};
    for (const input of inputs.querySelectorAll<HTMLInputElement>("input")) values[input.name] = input.value;
    clear(answer, state("loading", "Running through the gateway…"));
    try {
      const result = await api.post<PlaygroundAnswer>("/dashboard/api/playground",
        { prompt_id: promptId, version_id: version.id, inputs: values });
      clear(answer, playgroundAnswer(result));
    } catch (error) {
      clear(answer, failed("The playground could not run", error));
    }
  };

  return [
    h("div", { class: "panel" }, h("h3", {}, `Changes in ${label(version)}`), diff),
    h("div", { class: "panel" }, h("h3", {}, `Edit ${label(version)}`), editor, found,
      h("div", { class: "buttons" }, message,
        h("button", { type: "button", id: "publish", onclick: () => void publish() }, "Publish as new version"),
        environment,
        h("button", { type: "button", id: "deploy", onclick: () => void deploy() }, `Deploy ${label(version)}`)),
      note),
    h("div", { class: "panel" }, h("h3", {}, `Playground: run ${label(version)}`),
      h("p", { class: "muted" }, "Runs through the gateway as the signed-in key (logged like any request)."),
      inputs, h("div", { class: "buttons" },
        h("button", { type: "button", id: "run-prompt", class: "primary", onclick: () => void run() }, "Run")),
      answer),
  ];
}

function playgroundAnswer(result: PlaygroundAnswer): HTMLElement {
  const body = result.body as { choices?: { message?: { content?: unknown } }[];
    error?: { message?: unknown } } | null;
  const content = body?.choices?.[0]?.message?.content;
  const headline = result.status === 200 && typeof content === "string"
    ? h("div", { class: "msg msg-assistant" }, h("div", { class: "msg-role" }, "assistant"),
      h("div", { class: "msg-text", id: "playground-text" }, content))
    : state("error", `The gateway answered ${result.status}: ${String(body?.error?.message ?? "no answer")}`);
  return h("div", {}, headline, h("details", {}, h("summary", {}, "Raw answer"),
    h("pre", { class: "raw" }, JSON.stringify(result.body, null, 2))));
}
