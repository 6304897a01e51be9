// SQL: an HQL editor over the organisation's request log (gateway/api/hql.py): the schema
// (a column's name goes into the editor at the cursor), the query run (Ctrl/Cmd+Enter) with
// its rows in a table, saved queries (open, save, save as new, delete) and a CSV download link.
// Cell values are text (textContent): logged bodies cannot become markup.

import { Api } from "../api";
import { clear, h, state } from "../dom";
import * as fmt from "../format";
import { currentQuery, writeQuery } from "../urlstate";

interface Column { name: string; type: string }
interface Table { table_name: string; columns: Column[] }
interface Result { rows: Record<string, unknown>[]; elapsedMilliseconds: number; rowCount: number }
interface Saved { id: string; name: string; sql: string; updated_at: string }

export const DEFAULT_SQL =
  "SELECT model, count() AS requests, sum(cost) AS cost\nFROM request_response_rmt\n" +
  "GROUP BY model\nORDER BY requests DESC\nLIMIT 20";

export function sql(api: Api, signal: AbortSignal): HTMLElement {
  const editor = h("textarea", { id: "hql", rows: 9, spellcheck: "false",
    "aria-label": "HQL query (Ctrl+Enter runs it)" });
  // The query last run is in the URL (`#/sql?q=…`): a reload or a shared link runs it again.
  const fromUrl = (currentQuery().get("q") ?? "").slice(0, 20_000);
  editor.value = fromUrl.trim() ? fromUrl : DEFAULT_SQL;
  const schemaBox = h("div", { id: "hql-schema" }, state("loading", "Loading the schema…"));
  const savedBox = h("div", { id: "hql-saved" }, state("loading", "Loading saved queries…"));
  const results = h("div", { id: "hql-results", class: "results", "aria-live": "polite" },
    h("p", { class: "muted" }, "Run a query to see its rows."));
  const name = h("input", { id: "hql-name", "aria-label": "Saved query name", placeholder: "name",
    maxlength: 254 });
  const note = h("p", { class: "note", role: "status" });
  let openId: string | null = null;

  const say = (text: string, error = false) => {
    note.className = error ? "note error" : "note";
    note.textContent = text;
  };

  const run = async () => {
    writeQuery({ q: editor.value === DEFAULT_SQL ? null : editor.value }, "replace", signal);
    clear(results, state("loading", "Running…"));
    results.setAttribute("aria-busy", "true");
    try {
      const answer = await api.post<Result>("/v1/helicone-sql/execute", { sql: editor.value }, signal);
      clear(results, resultTable(answer));
    } catch (error) {
      if (!signal.aborted) clear(results, state("error", `The query failed: ${(error as Error).message}`));
    } finally {
      results.removeAttribute("aria-busy");
    }
  };
  const download = async () => {
    say("Preparing the CSV…");
    try {
      const link = await api.post<string>("/v1/helicone-sql/download", { sql: editor.value }, signal);
      clear(note, h("a", { href: link, id: "hql-csv", download: "" }, "Download the CSV"),
        h("span", { class: "muted" }, " (the link expires)"));
      note.className = "note";
    } catch (error) {
      say(`No CSV: ${(error as Error).message}`, true);
    }
  };
  const save = async (asNew: boolean) => {
    const label = name.value.trim();
    if (!label) {
      say("Give the query a name to save it.", true);
      name.focus();
      return;
    }
    try {
      const stored = openId && !asNew
        ? await api.put<Saved>(`/v1/helicone-sql/saved-query/${encodeURIComponent(openId)}`,
          { name: label, sql: editor.value })
        : await api.post<Saved>("/v1/helicone-sql/saved-query", { name: label, sql: editor.value });
      openId = stored.id;
      say(`Saved "${stored.name}".`);
      await loadSaved();
    } catch (error) {
      say(`Not saved: ${(error as Error).message}`, true);
    }
  };
  const remove = async () => {
    if (!openId) return;
    try {
      await api.del(`/v1/helicone-sql/saved-query/${encodeURIComponent(openId)}`);
      say(`Deleted "${name.value}".`);
      openId = null;
      name.value = "";
      await loadSaved();
    } catch (error) {
      say(`Not deleted: ${(error as Error).message}`, true);
    }
  };

  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      void run();
    }
  });

  const loadSaved = async () => {
    let rows: Saved[];
    try {
      rows = await api.get<Saved[]>("/v1/helicone-sql/saved-queries", signal);
    } catch (error) {
      if (!signal.aborted) clear(savedBox, state("error", `Could not load saved queries: ${(error as Error).message}`));
      return;
    }
    if (signal.aborted) return;
    clear(savedBox, rows.length === 0 ? state("empty", "No saved queries yet.")
      : h("ul", { class: "plain" }, rows.map((q) => h("li", {},
        h("button", { type: "button", class: "quiet link", "data-saved-id": q.id,
          "aria-pressed": String(q.id === openId), onclick: () => {
            openId = q.id;
            name.value = q.name;
            editor.value = q.sql;
            say(`Opened "${q.name}".`);
            void loadSaved();
            editor.focus();
          } }, q.name)))));
  };

  const loadSchema = async () => {
    let tables: Table[];
    try {
      tables = await api.get<Table[]>("/v1/helicone-sql/schema", signal);
    } catch (error) {
      if (!signal.aborted) clear(schemaBox, state("error", `Could not load the schema: ${(error as Error).message}`));
      return;
    }
    if (signal.aborted) return;
    clear(schemaBox, tables.map((t) => h("details", { open: true },
      h("summary", {}, h("code", {}, t.table_name)),
      h("ul", { class: "plain columns-list" }, t.columns.map((c) => h("li", {},
        h("button", { type: "button", class: "quiet link", title: `Insert ${c.name}`,
          onclick: () => insert(editor, c.name) }, c.name),
        h("span", { class: "muted" }, ` ${c.type}`)))))));
  };
  void loadSchema();
  void loadSaved();
  if (fromUrl.trim()) void run();

  return h("section", { class: "view", "aria-labelledby": "sql-title" },
    h("div", { class: "toolbar" }, h("h1", { id: "sql-title" }, "SQL"),
      h("span", { class: "muted" }, "HQL: read-only ClickHouse SQL over this organisation's requests")),
    h("div", { class: "split" },
      h("aside", { class: "panel" }, h("h2", {}, "Saved queries"), savedBox,
        h("h2", {}, "Schema"), schemaBox),
      h("div", {},
        editor,
        h("div", { class: "buttons" },
          h("button", { type: "button", id: "hql-run", class: "primary", onclick: () => void run() },
            "Run (Ctrl+Enter)"),
          h("button", { type: "button", onclick: () => void download() }, "CSV"),
          name,
          h("button", { type: "button", id: "hql-save", onclick: () => void save(false) }, "Save"),
          h("button", { type: "button", onclick: () => void save(true) }, "Save as new"),
          h("button", { type: "button", class: "danger", onclick: () => void remove() }, "Delete")),
        note, results)));
}

function insert(editor: HTMLTextAreaElement, text: string): void {
  const start = editor.selectionStart, end = editor.selectionEnd;
  editor.setRangeText(text, start, end, "end");
  editor.focus();
}

function resultTable(answer: Result): HTMLElement {
  const summary = h("p", { class: "muted", id: "hql-summary" },
    `${fmt.count(answer.rowCount)} row${answer.rowCount === 1 ? "" : "s"} in ${fmt.ms(answer.elapsedMilliseconds)}`);
  if (answer.rows.length === 0) return h("div", {}, summary, state("empty", "The query returned no rows."));
  const columns = Object.keys(answer.rows[0]);
  return h("div", {}, summary, h("div", { class: "scroll" }, h("table", { "aria-label": "Query results" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, answer.rows.map((row) => h("tr", {}, columns.map((c) => {
      const value = row[c];
      const numeric = typeof value === "number";
      return h("td", { class: numeric ? "num" : "cell" },
        value === null || value === undefined ? "–"
          : typeof value === "object" ? JSON.stringify(value) : String(value));
    })))))));
}
