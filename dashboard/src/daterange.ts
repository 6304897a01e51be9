// A custom time range beside the presets (Overview and Requests): the preset select gains a
// "Custom range" option that shows two local date-time inputs, From and To. A range is used
// only once both ends are set and From is before To; otherwise the note says why, in words.

import { h } from "./dom";

export const CUSTOM = "custom";

export interface Span { from: Date; to: Date }

export interface CustomRange {
  /** The inputs and the note, hidden unless the select is on "Custom range". */
  element: HTMLElement;
  /** The chosen span, or null (and the note says why) when it is not a valid one. */
  span(): Span | null;
  /** Shown or hidden with the select's value. */
  show(visible: boolean): void;
}

/** `datetime-local` value (local time, minutes) of a date. */
export function localValue(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
    + `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** The inputs, starting at `initial` (the last 24 hours when none); `changed` runs when a
 *  valid span is entered. */
export function customRange(idPrefix: string, changed: () => void, initial?: Span): CustomRange {
  const now = new Date();
  const start = initial ?? { from: new Date(now.getTime() - 24 * 3600_000), to: now };
  const from = h("input", { type: "datetime-local", id: `${idPrefix}-from`, "aria-label": "From",
    value: localValue(start.from) });
  const to = h("input", { type: "datetime-local", id: `${idPrefix}-to`, "aria-label": "To",
    value: localValue(start.to) });
  const note = h("span", { class: "note error", role: "alert" });
  const element = h("span", { class: "custom-range", hidden: true },
    h("label", { class: "inline" }, "From ", from), h("label", { class: "inline" }, "To ", to), note);
  const span = (): Span | null => {
    const a = new Date(from.value);
    const b = new Date(to.value);
    if (!from.value || !to.value || Number.isNaN(a.getTime()) || Number.isNaN(b.getTime())) {
      note.textContent = "Enter both the start and the end of the range.";
      return null;
    }
    if (a.getTime() >= b.getTime()) {
      note.textContent = "The start must be before the end.";
      return null;
    }
    note.textContent = "";
    return { from: a, to: b };
  };
  const onChange = () => { if (span()) changed(); };
  from.addEventListener("change", onChange);
  to.addEventListener("change", onChange);
  return { element, span, show: (visible) => { element.hidden = !visible; } };
}

/** The bucket size for a span: minutes up to 3 hours, hours up to 7 days, then days. */
export function incrementFor(span: Span): string {
  const hours = (span.to.getTime() - span.from.getTime()) / 3600_000;
  return hours <= 3 ? "min" : hours <= 24 * 7 ? "hour" : "day";
}
