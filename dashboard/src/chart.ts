// Time-series charts with uPlot: colours from the page's CSS variables (so they follow the
// light/dark theme), sized to their container and redrawn when it changes width.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom";

export interface Line {
  label: string;
  values: (number | null)[];
  format: (v: number | null) => string;
  /** Draw each value as a dot too (sparse series, such as percentiles, have gaps). */
  points?: boolean;
}

const PALETTE = ["--series-1", "--series-2", "--series-3", "--series-4"];

/** ``utc``: label the time axis in UTC rather than the browser's time zone. */
export function timeChart(title: string, times: number[], lines: Line[], utc = false): HTMLElement {
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, title));
  const plotBox = h("div", { class: "plot" });
  figure.append(plotBox);
  const css = getComputedStyle(document.documentElement);
  const color = (name: string) => css.getPropertyValue(name).trim() || "#888";
  const axis = {
    stroke: color("--muted"),
    grid: { stroke: color("--grid"), width: 1 },
    ticks: { stroke: color("--grid"), width: 1 },
  };
  const opts: uPlot.Options = {
    width: 400,
    height: 180,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    ...(utc ? { tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC") } : {}),
    axes: [
      axis,
      { ...axis, size: 76, values: (_u, ticks) => ticks.map((t) => lines[0].format(t)) },
    ],
    series: [
      {},
      ...lines.map((line, i) => ({
        label: line.label,
        stroke: color(PALETTE[i % PALETTE.length]),
        width: 2,
        spanGaps: false,
        points: line.points ? { show: true, size: 5 } : {},
        value: (_u: uPlot, v: number | null) => line.format(v),
      })),
    ],
  };
  const data: uPlot.AlignedData = [times, ...lines.map((l) => l.values)];
  const plot = new uPlot(opts, data, plotBox);
  const resize = new ResizeObserver(() => {
    const width = Math.floor(plotBox.clientWidth);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: 180 });
  });
  resize.observe(plotBox);
  return figure;
}
