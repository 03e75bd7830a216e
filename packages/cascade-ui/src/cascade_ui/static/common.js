/* Cascade UI: what both pages share. Every value from the store reaches the page as text
   (textContent, attribute values): nothing recorded is ever parsed as HTML. */
"use strict";

const CascadeUI = (() => {
  const COLOURS = {
    Succeeded: "#2e9d5b", Failed: "#d64545", Retried: "#f0a030", Cancelled: "#9a6fb0",
    Running: "#e0a800", Pending: "#e9edf2", Checkpoint: "#3a86c8", CacheHit: "#5fa8d3",
    Skipped: "#8fa3b8", NotRun: "#cfd4da", Crashed: "#8b1a1a", Param: "#ffffff",
  };
  const LIGHT = new Set(["Pending", "NotRun", "Param", "Skipped"]);

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined || !isFinite(value)) return "-";
    if (value < 1) return `${(value * 1000).toFixed(value < 0.01 ? 2 : 0)} ms`;
    if (value < 120) return `${value.toFixed(2)} s`;
    if (value < 7200) return `${(value / 60).toFixed(1)} min`;
    return `${(value / 3600).toFixed(1)} h`;
  }

  function when(epoch) {
    if (!epoch) return "-";
    const d = new Date(epoch * 1000);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function badge(status, extra) {
    const node = el("span", { class: "badge", text: status, dataset: { status } });
    node.style.background = COLOURS[status] || "#5b6675";
    if (LIGHT.has(status)) node.classList.add("light");
    if (extra) node.id = extra;
    return node;
  }

  /** Task counts by status as coloured chips: "3 Succeeded 1 Failed". */
  function chips(counts) {
    const order = Object.keys(COLOURS);
    const keys = Object.keys(counts || {}).sort((a, b) => order.indexOf(a) - order.indexOf(b));
    const box = el("span", { class: "chips" });
    for (const key of keys) {
      const dot = el("i");
      dot.style.background = COLOURS[key] || "#5b6675";
      box.append(el("span", { class: "chip", dataset: { status: key, count: counts[key] } },
        dot, `${counts[key]} ${key}`));
    }
    if (!keys.length) box.append(el("span", { class: "chip", text: "none yet" }));
    return box;
  }

  function paramText(record) {
    if (record && Object.prototype.hasOwnProperty.call(record, "value")) {
      return JSON.stringify(record.value, null, 1);
    }
    return `${record && record.repr}  (${record && record.type}, not JSON)`;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  const COLUMN_TYPES = { int32: Int32Array, float64: Float64Array, uint8: Uint8Array };

  /** A binary columns document (``format=binary``): its JSON head's keys, and each column as
      a typed array over the body, read in place (no text to parse). */
  async function getColumns(url) {
    const response = await fetch(url, { headers: { accept: "application/octet-stream" } });
    if (!response.ok) {
      const data = await response.json();
      throw new Error(data.error || response.statusText);
    }
    const body = await response.arrayBuffer();
    const size = new DataView(body).getUint32(0, true);
    const head = JSON.parse(new TextDecoder().decode(new Uint8Array(body, 4, size)));
    for (const [name, type, offset, count] of head.columns) {
      head[name] = new COLUMN_TYPES[type](body, offset, count);
    }
    return head;
  }

  /** An EventSource whose state shows in the header's "live" mark. */
  function live(url, handlers) {
    const mark = document.getElementById("live");
    const source = new EventSource(url);
    source.onopen = () => { mark.textContent = "live"; mark.className = "live on"; };
    source.onerror = () => { mark.textContent = "reconnecting…"; mark.className = "live off"; };
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
    }
    return source;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  return { COLOURS, LIGHT, el, append, svg, seconds, when, badge, chips, paramText, getJSON,
           getColumns, live, debounce };
})();
