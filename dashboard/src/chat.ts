// Renders a logged request's conversation: the request's messages and the answer, for the
// OpenAI chat shape (content parts, tool calls, reasoning) and Anthropic's messages (content
// blocks: text, image, tool_use, tool_result, thinking). Anything else is left to the raw
// bodies. Images given inline (data: URLs, base64 sources) are shown; images on other hosts
// are linked, never loaded (the page makes no external requests).

import { h } from "./dom";

type Json = unknown;
interface Message { role: string; parts: HTMLElement[] }

const isObject = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

export function conversation(request: Json, response: Json): HTMLElement | null {
  const messages: Message[] = [];
  if (isObject(request)) {
    if (typeof request.system === "string") messages.push({ role: "system", parts: [text(request.system)] });
    else if (Array.isArray(request.system)) messages.push({ role: "system", parts: blocks(request.system) });
    if (Array.isArray(request.messages)) {
      for (const m of request.messages) if (isObject(m)) messages.push(message(m));
    }
  }
  const answer = isObject(response) && isObject(response.reconstructed) ? response.reconstructed : response;
  if (isObject(answer)) {
    if (Array.isArray(answer.choices)) {
      for (const choice of answer.choices) {
        if (isObject(choice) && isObject(choice.message)) messages.push(message(choice.message, true));
        else if (isObject(choice) && typeof choice.text === "string") {
          messages.push({ role: "assistant", parts: [text(choice.text)] });
        }
      }
    } else if (Array.isArray(answer.content) && answer.role === "assistant") {
      messages.push({ role: "assistant", parts: blocks(answer.content) });
    }
  }
  if (messages.length === 0) return null;
  return h("ol", { class: "chat" }, messages.map((m) => h("li", {
    class: `msg msg-${safeRole(m.role)}`,
  }, h("div", { class: "msg-role" }, m.role), m.parts)));
}

function safeRole(role: string): string {
  return /^[a-z_]+$/.test(role) ? role : "other";
}

function message(m: Record<string, Json>, fromAnswer = false): Message {
  const role = typeof m.role === "string" ? m.role : fromAnswer ? "assistant" : "user";
  const parts: HTMLElement[] = [];
  const reasoning = m.reasoning_content ?? m.reasoning;
  if (typeof reasoning === "string" && reasoning) {
    parts.push(h("details", { class: "reasoning" }, h("summary", {}, "Reasoning"), text(reasoning)));
  }
  if (typeof m.content === "string") parts.push(text(m.content));
  else if (Array.isArray(m.content)) parts.push(...blocks(m.content));
  if (Array.isArray(m.tool_calls)) {
    for (const call of m.tool_calls) {
      if (!isObject(call)) continue;
      const fn = isObject(call.function) ? call.function : {};
      parts.push(toolCall(String(fn.name ?? "tool"), fn.arguments));
    }
  }
  if (typeof m.tool_call_id === "string") parts.unshift(h("div", { class: "muted" }, `result of ${m.tool_call_id}`));
  if (parts.length === 0) parts.push(h("div", { class: "muted" }, "(no content)"));
  return { role, parts };
}

function blocks(list: Json[]): HTMLElement[] {
  const out: HTMLElement[] = [];
  for (const block of list) {
    if (typeof block === "string") { out.push(text(block)); continue; }
    if (!isObject(block)) continue;
    const type = block.type;
    if ((type === "text" || type === "input_text" || type === "output_text") && typeof block.text === "string") {
      out.push(text(block.text));
    } else if (type === "image_url" && isObject(block.image_url)) {
      out.push(image(String(block.image_url.url ?? "")));
    } else if (type === "image" && isObject(block.source)) {
      const s = block.source;
      out.push(s.type === "base64"
        ? image(`data:${String(s.media_type ?? "image/png")};base64,${String(s.data ?? "")}`)
        : image(String(s.url ?? "")));
    } else if (type === "tool_use") {
      out.push(toolCall(String(block.name ?? "tool"), block.input));
    } else if (type === "tool_result") {
      const content = block.content;
      out.push(h("div", { class: "tool" }, h("div", { class: "tool-name" }, "Tool result"),
        typeof content === "string" ? text(content) : Array.isArray(content) ? blocks(content) : pre(content)));
    } else if ((type === "thinking" || type === "reasoning") && typeof (block.thinking ?? block.text) === "string") {
      out.push(h("details", { class: "reasoning" }, h("summary", {}, "Reasoning"),
        text(String(block.thinking ?? block.text))));
    } else {
      out.push(pre(block));
    }
  }
  return out;
}

function toolCall(name: string, args: Json): HTMLElement {
  let shown = args;
  if (typeof args === "string") {
    try { shown = JSON.parse(args); } catch { shown = args; }
  }
  return h("div", { class: "tool" }, h("div", { class: "tool-name" }, `Tool call · ${name}`), pre(shown));
}

function image(url: string): HTMLElement {
  if (url.startsWith("data:image/")) return h("img", { class: "chat-image", src: url, alt: "image in the message" });
  return h("div", { class: "muted" }, "Image (not loaded: on another host): ", h("code", {}, url));
}

function text(value: string): HTMLElement {
  return h("div", { class: "msg-text" }, value);
}

export function pre(value: Json): HTMLElement {
  return h("pre", { class: "raw" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}
