// nbhub web UI — a flow's tasks as a graph: layers by longest path from the
// roots (a task sits one layer right of its deepest parent), tasks of a layer
// stacked in file order, edges as curves from a parent's right side to the
// child's left.  Plain SVG built with DOM calls; no layout library.

import { s } from "./app.js";

const W = 150, H = 34, GX = 60, GY = 18;

export function dagSvg(tasks, states) {
  const byName = new Map(tasks.map((t, i) => [t.name, { t, i, layer: 0 }]));
  // Longest-path layering; flows are validated acyclic by the server, the
  // visit bound only guards against a malformed answer.
  const layerOf = (n, depth = 0) => {
    const v = byName.get(n);
    if (!v || depth > tasks.length) return 0;
    if (v.done) return v.layer;
    v.layer = Math.max(0, ...(v.t.after || []).map((p) => layerOf(p, depth + 1) + 1));
    v.done = true;
    return v.layer;
  };
  for (const t of tasks) layerOf(t.name);
  const layers = [];
  for (const v of byName.values()) (layers[v.layer] = layers[v.layer] || []).push(v);
  layers.forEach((l, x) => l.forEach((v, y) => { v.x = x * (W + GX) + 4; v.y = y * (H + GY) + 4; }));
  const width = layers.length * (W + GX) - GX + 8;
  const height = Math.max(...layers.map((l) => l.length)) * (H + GY) - GY + 8;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `task graph: ${tasks.length} tasks` });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 8, markerHeight: 8, orient: "auto" },
    s("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }))));
  for (const v of byName.values()) {
    for (const p of v.t.after || []) {
      const u = byName.get(p);
      if (!u) continue;
      const x1 = u.x + W, y1 = u.y + H / 2, x2 = v.x, y2 = v.y + H / 2, mx = (x1 + x2) / 2;
      svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
    }
  }
  for (const v of byName.values()) {
    const st = states && states[v.t.name];
    const kind = v.t.notebook ? "notebook" : "command";
    const label = v.t.name.length > 20 ? v.t.name.slice(0, 19) + "…" : v.t.name;
    svg.append(s("g", { class: `node ${kind}${st ? " st-" + st : ""}`, transform: `translate(${v.x},${v.y})` },
      s("title", {}, `${v.t.name} (${kind}${v.t.notebook ? ": " + v.t.notebook : ""})${st ? " — " + st : ""}`),
      s("rect", { width: W, height: H, rx: 6 }),
      s("text", { x: 10, y: H / 2 + 5 }, label)));
  }
  return svg;
}
