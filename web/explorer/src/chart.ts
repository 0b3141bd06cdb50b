// The order book's depth as an SVG bar chart: bids (buyers' resting
// prices) left in green, asks (providers' free slots) right in red, one bar
// per price level, its height the count there.

import type { PriceLevel } from "@icp-compute-market/bindings/matcher/matcher.did";
import { amount, el } from "./view";

const SVG = "http://www.w3.org/2000/svg";
const W = 560;
const H = 180;
const PAD = 28;

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The chart of one side pair of the book (`unit` names the price unit). */
export function depthChart(unit: string, bids: PriceLevel[], asks: PriceLevel[]): HTMLElement {
  // Bids highest first, asks lowest first: lay them out by ascending price.
  const levels = [
    ...[...bids].reverse().map((l) => ({ ...l, side: "bid" })),
    ...asks.map((l) => ({ ...l, side: "ask" })),
  ];
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "data-testid": "depth-chart" });
  chart.append(svg("title", {}, `order book depth, price ${unit}`));
  chart.append(svg("line", { x1: PAD, y1: H - PAD, x2: W - 4, y2: H - PAD, class: "axis" }));
  if (levels.length === 0) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label" }, "no resting bids or free slots"));
  }
  const max = levels.reduce((m, l) => (l.count > m ? l.count : m), 1n);
  const slot = (W - PAD - 8) / Math.max(levels.length, 1);
  const barW = Math.max(Math.min(slot * 0.7, 60), 4);
  levels.forEach((l, i) => {
    const h = Math.max(((H - 2 * PAD) * Number(l.count)) / Number(max), 2);
    const x = PAD + i * slot + (slot - barW) / 2;
    const bar = svg("rect", { x, y: H - PAD - h, width: barW, height: h, class: l.side, "data-price": String(l.price) });
    bar.append(svg("title", {}, `${l.side === "bid" ? "bids" : "free slots"}: ${l.count} at ${amount(l.price)}`));
    chart.append(bar);
    chart.append(svg("text", { x: x + barW / 2, y: H - PAD + 14, "text-anchor": "middle", class: "label" }, amount(l.price)));
    chart.append(svg("text", { x: x + barW / 2, y: H - PAD - h - 4, "text-anchor": "middle", class: "label" }, String(l.count)));
  });
  return el("figure", { class: "depth" }, chart as unknown as Node, el("figcaption", {}, `Depth, price ${unit}: bids (green), free slots (red)`));
}
