// The filter builder's model and the filter AST it produces (observability-api.md §2.1): one
// leaf per condition (`{request_response_rmt: {field: {operator: value}}}`, properties and
// scores one level deeper), conditions joined by a left-nested chain of `and`/`or` branches,
// and the time range ANDed in front. No conditions and no range give "all".

export type Kind = "text" | "number" | "bool";

export interface FieldDef {
  /** The AST field (`request_response_rmt.<field>`), or "properties"/"scores" (keyed). */
  field: string;
  label: string;
  kind: Kind;
  /** Properties and scores name a key as well. */
  keyed?: boolean;
  ops?: readonly string[];
}

export const TEXT_OPS = ["equals", "not-equals", "contains", "not-contains", "like", "ilike"] as const;
export const NUMBER_OPS = ["equals", "not-equals", "gte", "lte", "gt", "lt"] as const;
export const BOOL_OPS = ["equals"] as const;

export const OP_LABELS: Record<string, string> = {
  equals: "=", "not-equals": "≠", contains: "contains", "not-contains": "does not contain",
  like: "like", ilike: "ilike", gte: "≥", lte: "≤", gt: ">", lt: "<",
};

export const FIELDS: readonly FieldDef[] = [
  { field: "model", label: "Model", kind: "text" },
  { field: "provider", label: "Provider", kind: "text" },
  { field: "status", label: "Status", kind: "number" },
  { field: "user_id", label: "User", kind: "text" },
  { field: "latency", label: "Latency (ms)", kind: "number" },
  { field: "time_to_first_token", label: "TTFT (ms)", kind: "number" },
  { field: "cost", label: "Cost (USD)", kind: "number" },
  { field: "total_tokens", label: "Total tokens", kind: "number" },
  { field: "prompt_tokens", label: "Prompt tokens", kind: "number" },
  { field: "completion_tokens", label: "Completion tokens", kind: "number" },
  { field: "request_id", label: "Request id", kind: "text" },
  { field: "request_body", label: "Request body", kind: "text", ops: ["contains"] },
  { field: "response_body", label: "Response body", kind: "text", ops: ["contains"] },
  { field: "properties", label: "Property", kind: "text", keyed: true },
  { field: "scores", label: "Score", kind: "number", keyed: true },
  { field: "cached", label: "Cache hit", kind: "bool" },
  { field: "threat", label: "Threat", kind: "bool" },
];

export function fieldDef(field: string): FieldDef {
  const def = FIELDS.find((f) => f.field === field);
  if (!def) throw new Error(`unknown filter field ${field}`);
  return def;
}

export function opsOf(def: FieldDef): readonly string[] {
  if (def.ops) return def.ops;
  if (def.keyed && def.field === "scores") return NUMBER_OPS;
  return def.kind === "number" ? NUMBER_OPS : def.kind === "bool" ? BOOL_OPS : TEXT_OPS;
}

export interface Condition {
  field: string;
  key: string;
  op: string;
  value: string;
}

export type FilterNode =
  | "all"
  | { request_response_rmt: Record<string, unknown> }
  | { left: FilterNode; operator: "and" | "or"; right: FilterNode };

/** Why a condition cannot be sent yet (shown next to it), or null when it is complete. */
export function problem(c: Condition): string | null {
  const def = fieldDef(c.field);
  if (def.keyed && !c.key.trim()) return `Name the ${def.label.toLowerCase()}.`;
  if (def.kind === "number" || (def.keyed && def.field === "scores")) {
    if (c.value.trim() === "" || !Number.isFinite(Number(c.value))) return "Enter a number.";
  } else if (def.kind === "text" && c.value === "") {
    return "Enter a value.";
  }
  return null;
}

/** One condition's leaf. Scores compare as text in the API (it casts them to numbers). */
export function leaf(c: Condition): FilterNode {
  const def = fieldDef(c.field);
  let value: unknown = c.value;
  if (def.kind === "bool") value = c.value === "true";
  else if (def.kind === "number" && !def.keyed) value = Number(c.value);
  const clause = { [c.op]: value };
  const body = def.keyed ? { [c.key.trim()]: clause } : clause;
  return { request_response_rmt: { [def.field]: body } };
}

/** Leaves joined left to right: ((a op b) op c) … */
export function chain(nodes: FilterNode[], operator: "and" | "or"): FilterNode {
  if (nodes.length === 0) return "all";
  return nodes.slice(1).reduce((left, right) => ({ left, operator, right }), nodes[0]);
}

/** The request query's filter: complete conditions joined by `join`, after the time range
 *  (from `since`, and up to `until` for a custom range). */
export function buildFilter(conditions: Condition[], join: "and" | "or", since: Date | null,
  until: Date | null = null): FilterNode {
  const user = chain(conditions.filter((c) => problem(c) === null).map(leaf), join);
  if (since === null) return user;
  let range: FilterNode = {
    request_response_rmt: { request_created_at: { gte: since.toISOString() } },
  };
  if (until !== null) {
    range = { left: range, operator: "and",
      right: { request_response_rmt: { request_created_at: { lte: until.toISOString() } } } };
  }
  return user === "all" ? range : { left: range, operator: "and", right: user };
}
