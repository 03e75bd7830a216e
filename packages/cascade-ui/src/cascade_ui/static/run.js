/* One run's page: facts, params, the graph grouped by task and coloured by status, a timeline
   of every attempt (a canvas: a 100,000-attempt run draws in milliseconds), the failures, and
   a paged task table. The run's document comes from /api/runs/{id}/events each time its
   record changes; the timeline and the table page are fetched again then. */
"use strict";

(() => {
  const { COLOURS, LIGHT, el, svg, seconds, when, badge, chips, paramText, getJSON, getColumns,
          live, debounce } = CascadeUI;
  const runId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
  const api = `/api/runs/${encodeURIComponent(runId)}`;
  const MAX_NODES = 400;
  // The first page of everything is asked for at once, before the run's document arrives.
  const prefetched = {
    timeline: getColumns(`${api}/timeline?after=0&format=binary`),
  };
  let doc = null;
  const shown = { graph: false, timeline: false, tasks: false };

  function markReady(part) {
    performance.mark(`cascade:${part}`);  // how long each part took: the benchmark reads them
    shown[part] = true;
    if (shown.graph && shown.timeline && shown.tasks) document.body.dataset.ready = "1";
  }

  // -- facts ---------------------------------------------------------------------------------

  function renderFacts() {
    const run = doc;
    const title = run.name || run.label || run.target;
    document.title = `${run.short_id} ${title} · Cascade`;
    document.getElementById("title").textContent = `Run ${run.short_id}: ${title}`;
    document.getElementById("crumb-run").textContent = run.short_id;
    document.getElementById("run-status").replaceWith(badge(run.status, "run-status"));
    document.body.dataset.status = run.status;
    const error = document.getElementById("run-error");
    error.hidden = !run.error;
    error.textContent = run.error || "";
    const rows = [
      ["Run id", run.run_id],
      ["Target", run.target + (run.label && run.label !== run.target ? `  (asked for as ${run.label})` : "")],
      ["Status", run.status],
      ["Started", when(run.started)],
      ["Ended", run.ended ? when(run.ended) : "-"],
      ["Duration", run.duration !== null ? seconds(run.duration)
        : `${seconds(Date.now() / 1000 - run.started)} so far`],
      ["Tasks", chips(run.unit_states)],
      ["Attempts", String(run.attempt_total)],
      ["Host / pid", `${run.host} / ${run.pid}`],
      ["Cascade", run.cascade_version],
    ];
    if (run.name) rows.splice(1, 0, ["Name", run.name]);
    if (run.trace_id) rows.push(["Trace id", run.trace_id]);
    if (run.resumed_from) {
      rows.push(["Resumed from", el("a", { href: `/runs/${encodeURIComponent(run.resumed_from)}`,
        class: "mono", text: run.resumed_from })]);
    }
    const table = document.getElementById("facts");
    table.replaceChildren(...rows.map(([key, value]) =>
      el("tr", { dataset: { fact: key } }, el("td", { text: key }), el("td", {}, value))));
    const params = document.getElementById("params");
    const names = Object.keys(run.params || {}).sort();
    params.replaceChildren(names.length
      ? el("table", { class: "facts", id: "params-table" },
        el("tr", {}, el("th", { text: "Param" }), el("th", { text: "Value" })),
        names.map((name) => el("tr", { dataset: { param: name } }, el("td", { text: name }),
          el("td", {}, el("pre", { text: paramText(run.params[name]) })))))
      : el("p", { class: "note", text: "This run took no params." }));
    document.getElementById("counts").textContent =
      `${run.unit_total} tasks, ${run.attempt_total} attempts`;
  }

  // -- the graph -----------------------------------------------------------------------------

  function renderLegend() {
    const legend = document.getElementById("legend");
    if (legend.childElementCount) return;
    for (const state of ["Succeeded", "Failed", "Retried", "Running", "Pending", "Cancelled",
      "Checkpoint", "CacheHit", "Skipped", "NotRun"]) {
      const box = el("i");
      box.style.background = COLOURS[state];
      legend.append(el("span", {}, box, state));
    }
  }

  function nodeCounts(group) {
    const done = Object.values(group.states).reduce((a, b) => a + b, 0);
    if (group.kind === "param") return "";
    if ((group.kind === "task" || group.kind === "stream") && done <= 1) {
      return group.attempts > 1 ? `${group.attempts} attempts` : "";
    }
    const parts = [`${done}`];
    if (group.states.Succeeded) parts.push(`✓${group.states.Succeeded}`);
    if (group.states.Failed) parts.push(`✗${group.states.Failed}`);
    const skipped = (group.states.Skipped || 0) + (group.states.Checkpoint || 0) + (group.states.CacheHit || 0);
    if (skipped) parts.push(`↷${skipped}`);
    return parts.join(" ");
  }

  function renderGraph() {
    const all = doc.groups;
    const note = document.getElementById("graph-note");
    const groups = all.slice(0, MAX_NODES);
    note.textContent = all.length > MAX_NODES
      ? `The graph has ${all.length} nodes; the first ${MAX_NODES} are drawn (the table has every task).`
      : "";
    const index = new Map(groups.map((g, i) => [g.id, i]));
    const depth = [];
    groups.forEach((g, i) => {
      depth[i] = 1 + Math.max(-1, ...g.deps.filter((d) => index.has(d)).map((d) => depth[index.get(d)]));
    });
    const columns = [];
    groups.forEach((g, i) => { (columns[depth[i]] = columns[depth[i]] || []).push(i); });
    const W = 180, H = 42, GX = 56, GY = 14;
    const pos = [];
    columns.forEach((members, c) => members.forEach((i, r) => { pos[i] = [10 + c * (W + GX), 10 + r * (H + GY)]; }));
    const width = 20 + columns.length * (W + GX) - GX;
    const height = 20 + Math.max(1, ...columns.map((m) => m.length)) * (H + GY);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "task graph" });
    root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#7b8794" }))));
    groups.forEach((g, i) => {
      for (const dep of g.deps) {
        if (!index.has(dep)) continue;
        const [x1, y1] = pos[index.get(dep)];
        const [x2, y2] = pos[i];
        const sx = x1 + W, sy = y1 + H / 2, ex = x2, ey = y2 + H / 2, mid = (sx + ex) / 2;
        root.append(svg("path", { class: "edge", d: `M${sx},${sy} C${mid},${sy} ${mid},${ey} ${ex},${ey}`,
          fill: "none", stroke: "#7b8794", "stroke-width": 1.3,
          "stroke-dasharray": g.dynamic ? "5,4" : null, "marker-end": "url(#arrow)" }));
      }
    });
    groups.forEach((g, i) => {
      const [x, y] = pos[i];
      const status = g.status;
      const light = LIGHT.has(status);
      const ink = light ? "#1d2430" : "#ffffff";
      const name = g.kind === "param" ? g.name.replace(/^param:/, "") : g.name;
      const label = name + (g.kind === "map" ? " [map]" : g.kind === "stream" ? " [stream]"
        : g.kind === "dynamic" ? ` ×${g.units}` : "");
      const shortLabel = label.length > 24 ? `${label.slice(0, 23)}…` : label;
      const counts = nodeCounts(g);
      const node = svg("g", { class: "node", "data-group-id": g.id, "data-status": status,
        "data-kind": g.kind, "data-units": g.units, "data-counts": counts });
      node.append(svg("title", { text: `${label}: ${status}${g.units > 1 ? ` (${g.units} tasks)` : ""}` }));
      node.append(svg("rect", { x, y, width: W, height: H, rx: g.kind === "param" ? 18 : 5,
        fill: COLOURS[status] || "#cfd4da", stroke: "#4a5563", "stroke-width": 1,
        "stroke-dasharray": g.dynamic ? "4,3" : null }));
      node.append(svg("text", { x: x + W / 2, y: y + (counts ? 17 : H / 2 + 4), "text-anchor": "middle",
        fill: ink, class: "label", text: shortLabel }));
      if (counts) {
        node.append(svg("text", { x: x + W / 2, y: y + 33, "text-anchor": "middle", fill: ink,
          class: "node-counts", text: counts }));
      }
      if (g.kind !== "param") node.addEventListener("click", () => filterByGroup(g));
      root.append(node);
    });
    document.getElementById("graph").replaceChildren(root);
    markReady("graph");
  }

  // -- the timeline --------------------------------------------------------------------------

  // The attempts' columns as typed arrays (the first n items used), grown as a live run adds
  // attempts; times in milliseconds from the run's start. The task ids and attempt numbers
  // (hover) come as plain arrays when first needed.
  const tl = { n: 0, group: new Int32Array(0), start: new Float64Array(0),
               duration: new Float64Array(0), state: new Uint8Array(0), attempt: [], suffix: [],
               states: [], total: 0, loading: false, again: false };
  const LANE = 16, ROW_GAP = 2, LABEL_W = 210, MAX_SUBROWS = 12;
  let layout = null;

  /** ``column`` with ``values`` (scaled by ``factor``) written from position ``at`` on. */
  function appended(column, at, values, factor = 1) {
    let into = column;
    if (into.length < at + values.length) {
      into = new column.constructor(Math.ceil((at + values.length) * 1.5));
      into.set(column.subarray(0, at));
    }
    if (factor === 1) into.set(values, at);
    else for (let i = 0; i < values.length; i++) into[at + i] = values[i] * factor;
    return into;
  }

  async function loadTimeline() {
    if (tl.loading) { tl.again = true; return; }
    tl.loading = true;
    try {
      const data = await (prefetched.timeline && tl.n === 0
        ? prefetched.timeline : getColumns(`${api}/timeline?after=${tl.n}&format=binary`));
      prefetched.timeline = null;
      if (data.after === tl.n) {
        tl.states = data.states;
        const count = data.group.length;
        tl.group = appended(tl.group, tl.n, data.group);
        tl.state = appended(tl.state, tl.n, data.state);
        // Times arrive in microseconds; the drawing works in milliseconds.
        tl.start = appended(tl.start, tl.n, data.start_us, 1 / 1000);
        tl.duration = appended(tl.duration, tl.n, data.duration_us, 1 / 1000);
        tl.n += count;
        tl.total = data.total;
      }
      drawTimeline();
      markReady("timeline");
    } finally {
      tl.loading = false;
      if (tl.again) { tl.again = false; loadTimeline(); }
    }
  }

  function drawTimeline() {
    const canvas = document.getElementById("timeline");
    const box = document.getElementById("timeline-box");
    const groups = doc.groups;
    const n = tl.n;
    // Lanes: the groups that have attempts, in graph order; each packs its bars into
    // sub-rows (greedy, by start), up to MAX_SUBROWS; more overlap in the last.
    // Greedy packing in arrival order: a bar goes into the first sub-row that is free at its
    // start, so bars never overlap, whatever the order (up to MAX_SUBROWS, then the sub-row
    // that frees first).
    const rowEnds = new Map();
    const subrow = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const g = tl.group[i];
      let ends = rowEnds.get(g);
      if (!ends) { ends = []; rowEnds.set(g, ends); }
      const start = tl.start[i];
      let r = -1;
      for (let k = 0; k < ends.length; k++) if (ends[k] <= start) { r = k; break; }
      if (r < 0) {
        if (ends.length < MAX_SUBROWS) r = ends.length;
        else { r = 0; for (let k = 1; k < ends.length; k++) if (ends[k] < ends[r]) r = k; }
      }
      ends[r] = start + tl.duration[i];
      subrow[i] = r;
    }
    const lanes = [];
    let y = 22;
    const laneTop = new Map();
    groups.forEach((g, index) => {
      if (!rowEnds.has(index)) return;
      const rows = rowEnds.get(index).length;
      laneTop.set(index, y);
      lanes.push({ index, y, rows, g });
      y += rows * (LANE + ROW_GAP) + 6;
    });
    const now = (Date.now() / 1000 - doc.started) * 1000;
    let span = doc.duration !== null ? doc.duration * 1000 : now;
    for (let i = 0; i < n; i++) span = Math.max(span, tl.start[i] + tl.duration[i]);
    span = Math.max(span, 1);
    const width = Math.max(box.clientWidth - 18, 600);
    const plot = width - LABEL_W - 16;
    const ratio = window.devicePixelRatio || 1;
    const height = Math.max(y + 4, 40);
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let t = 0; t <= 5; t++) {
      const x = LABEL_W + (plot * t) / 5;
      ctx.fillStyle = "#e6e9ee";
      ctx.fillRect(x, 16, 1, height - 16);
      ctx.fillStyle = "#5b6675";
      ctx.textAlign = t === 5 ? "right" : "center";
      ctx.fillText(seconds((span * t) / 5 / 1000), Math.min(x, width - 2), 8);
    }
    ctx.textAlign = "right";
    for (const lane of lanes) {
      const name = lane.g.name + (lane.g.units > 1 ? ` (${lane.g.units})` : "");
      ctx.fillStyle = "#1d2430";
      ctx.fillText(name.length > 30 ? `${name.slice(0, 29)}…` : name, LABEL_W - 8, lane.y + LANE / 2);
    }
    const scale = plot / span;
    // One path per state, filled once: setting the fill colour per bar would cost more than
    // drawing the bars. Bars of one state that touch within a pixel of one row merge into one
    // rectangle: a 100,000-item map draws a few thousand, and looks the same.
    const counts = {};
    const K = tl.states.length;
    const paths = tl.states.map(() => null);
    const laneOf = new Map(lanes.map((lane, k) => [lane.index, k]));
    const open = new Float64Array(lanes.length * MAX_SUBROWS * K * 2).fill(-1);
    const flush = (slot, y, code) => {
      let path = paths[code];
      if (path === null) { path = paths[code] = new Path2D(); }
      path.rect(open[slot], y, Math.max(open[slot + 1] - open[slot], 2), LANE - 2);
    };
    const rowY = (slot) => {
      const row = Math.floor(slot / (2 * K));
      const lane = lanes[Math.floor(row / MAX_SUBROWS)];
      return lane.y + (row % MAX_SUBROWS) * (LANE + ROW_GAP) + 1;
    };
    for (let i = 0; i < n; i++) {
      const lane = laneOf.get(tl.group[i]);
      if (lane === undefined) continue;
      const code = tl.state[i];
      const slot = ((lane * MAX_SUBROWS + subrow[i]) * K + code) * 2;
      const x1 = LABEL_W + tl.start[i] * scale;
      const x2 = x1 + Math.max(tl.duration[i] * scale, 2);
      if (open[slot] >= 0 && x1 <= open[slot + 1] + 1 && x2 >= open[slot] - 1) {
        if (x1 < open[slot]) open[slot] = x1;
        if (x2 > open[slot + 1]) open[slot + 1] = x2;
      } else {
        if (open[slot] >= 0) flush(slot, rowY(slot), code);
        open[slot] = x1;
        open[slot + 1] = x2;
      }
      const state = tl.states[code];
      counts[state] = (counts[state] || 0) + 1;
    }
    for (let slot = 0; slot < open.length; slot += 2) {
      if (open[slot] >= 0) flush(slot, rowY(slot), (slot / 2) % K);
    }
    paths.forEach((path, code) => {
      if (path === null) return;
      ctx.fillStyle = COLOURS[tl.states[code]] || "#cfd4da";
      ctx.fill(path);
    });
    canvas.dataset.bars = String(n);
    canvas.dataset.lanes = String(lanes.length);
    canvas.dataset.states = JSON.stringify(counts);
    layout = { laneTop, subrow, scale, span };
    document.getElementById("timeline-note").textContent =
      `${n} attempts in ${lanes.length} lanes; hover a bar for its task.`;
  }

  let details = null;
  function loadDetails() {
    if (details === null) {
      details = getJSON(`${api}/timeline?after=${tl.suffix.length}&fields=attempt,suffix`)
        .then((data) => {
          for (const value of data.attempt) tl.attempt.push(value);
          for (const value of data.suffix) tl.suffix.push(value);
        })
        .finally(() => { details = null; });
    }
    return details;
  }

  function hover(event) {
    const tip = document.getElementById("tip");
    if (!layout) return;
    const canvas = event.target;
    const rect = canvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    let found = -1;
    for (let i = tl.n - 1; i >= 0; i--) {
      const top = layout.laneTop.get(tl.group[i]);
      if (top === undefined) continue;
      const yy = top + layout.subrow[i] * (LANE + ROW_GAP);
      if (y < yy || y > yy + LANE) continue;
      const x1 = LABEL_W + tl.start[i] * layout.scale;
      if (x >= x1 - 1 && x <= x1 + Math.max(tl.duration[i] * layout.scale, 2) + 1) { found = i; break; }
    }
    if (found < 0) { tip.hidden = true; return; }
    if (found >= tl.suffix.length) {  // the bars' task ids and attempt numbers, once needed
      loadDetails().then(() => { if (found < tl.suffix.length) hover(event); });
      return;
    }
    tip.hidden = false;
    const group = doc.groups[tl.group[found]];
    const suffix = tl.suffix[found];  // a map item's "[i]", or a whole task id
    const taskId = group && (suffix === "" || suffix.startsWith("[")) ? group.id + suffix : suffix;
    tip.textContent = `${taskId}, attempt ${tl.attempt[found]}: ${tl.states[tl.state[found]]}\n` +
      `${seconds(tl.duration[found] / 1000)}, from +${seconds(tl.start[found] / 1000)}`;
    tip.style.left = `${canvas.offsetLeft + x + 12}px`;
    tip.style.top = `${canvas.offsetTop + y + 12}px`;
  }

  // -- failures ------------------------------------------------------------------------------

  function renderFailures() {
    const box = document.getElementById("failures");
    document.getElementById("failure-count").textContent = doc.failure_total
      ? `${doc.failure_total}${doc.failure_total > doc.failures.length ? `, the first ${doc.failures.length} shown` : ""}`
      : "";
    if (!doc.failures.length) {
      box.replaceChildren(el("p", { class: "note", text: "No task raised." }));
      return;
    }
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    box.replaceChildren(...doc.failures.map((f) => {
      const key = `${f.task_id}#${f.attempt}`;
      const who = f.call_name ? `${f.call_name} (${f.task_id})` : f.task_id;
      const parts = [el("summary", {},
        el("span", { class: "what", text: `${who} · attempt ${f.attempt}` }), " ",
        badge(f.state), " ", el("span", { class: "mono", text: (f.error || "").split("\n")[0] }))];
      parts.push(el("pre", { class: "error", text: f.error || f.error_type || "" }));
      if (f.upstream) parts.push(el("p", { class: "note", text: `upstream: ${f.upstream}` }));
      if (f.traceback) parts.push(el("h3", { text: "Traceback" }), el("pre", { class: "traceback", text: f.traceback }));
      if (f.logs && f.logs.length) parts.push(el("h3", { text: "Logs" }), logTable(f.logs));
      if (f.why_ran) parts.push(el("p", { class: "note", text: `ran because: ${f.why_ran}` }));
      return el("details", { class: `failure${f.state === "Retried" ? " retried" : ""}`,
        open: open.has(key) ? "" : null, dataset: { key, taskId: f.task_id } }, parts);
    }));
  }

  function logTable(logs) {
    const rows = logs.map((record) => {
      if (typeof record === "string") return el("tr", {}, el("td", { colspan: 4, text: record }));
      const item = Array.isArray(record)
        ? { time: record[0], level: record[1], logger: record[2], message: record[3] } : record;
      const time = typeof item.time === "number" ? when(item.time) : (item.time || "");
      return el("tr", {}, el("td", { text: time }), el("td", { text: item.level || item.levelname || "" }),
        el("td", { text: item.logger || item.name || "" }), el("td", {}, el("pre", { text: item.message || item.msg || "" })));
    });
    return el("table", { class: "grid logs" }, rows);
  }

  // -- tasks ---------------------------------------------------------------------------------

  // Two forms of one table. Unfiltered and "by task" (the default), one row per graph node
  // with its counts, from the run's document (nothing more to fetch); a row opens to its
  // tasks, SHOW_MORE at a time. Filtered (status, name, node) or not by task, one row per task,
  // paged by the server, table.limit at a time.
  const table = { offset: 0, limit: 100, group: null, loading: false, again: false,
                  open: new Map() };
  const SHOW_MORE = 20;
  const tStatus = document.getElementById("t-status");
  const tName = document.getElementById("t-name");
  const tByTask = document.getElementById("t-by-task");

  function grouped() {
    return tByTask.checked && !tStatus.value && !tName.value.trim() && !table.group;
  }

  function filterByGroup(group) {
    table.group = group;
    table.offset = 0;
    document.getElementById("t-group-box").hidden = false;
    document.getElementById("t-group").textContent = group.name;
    loadTasks();
    document.getElementById("tasks").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function taskRow(t, extra) {
    return el("tr", { dataset: { taskId: t.task_id, status: t.state }, class: extra || null },
      el("td", { text: t.call_name ? `${t.call_name} (${t.task})` : t.task }),
      el("td", { class: "mono", text: t.task_id }),
      el("td", {}, badge(t.state)),
      el("td", { class: "num", text: t.attempts }),
      el("td", { class: "num", text: seconds(t.duration) }),
      el("td", { class: "num", text: when(t.started) }),
      el("td", { text: t.executor || "-" }),
      el("td", {}, el("pre", { text: t.error || t.why_ran || t.skip_reason || "" })));
  }

  function setRange(text, total, first, last) {
    document.getElementById("t-range").textContent = text;
    document.getElementById("t-prev").disabled = first;
    document.getElementById("t-next").disabled = last;
    document.getElementById("tasks").dataset.total = String(total);
  }

  /** The rows of the "by task" form: a row per node, and under each open one its tasks. */
  function renderGroups() {
    const body = document.querySelector("#tasks tbody");
    const nodes = doc.groups.filter((g) => g.kind !== "param");
    const rows = [];
    let total = 0;
    for (const g of nodes) {
      total += Math.max(g.units, 1);  // a node that did not run is one row of the task table
      const opened = table.open.get(g.id);
      const label = g.name + (g.kind === "map" ? " [map]" : g.kind === "dynamic" ? ` ×${g.units}` : "");
      const toggle = el("button", { type: "button", class: "expand", text: opened ? "▾" : "▸",
        "aria-expanded": opened ? "true" : "false", title: `${g.units} tasks`,
        disabled: g.units ? null : "" });
      toggle.addEventListener("click", () => toggleGroup(g));
      rows.push(el("tr", { class: "group-row", dataset: { groupId: g.id, status: g.status,
        units: g.units } },
        el("td", {}, toggle, " ", label, " ",
          g.units > 1 || Object.keys(g.states).length > 1 ? chips(g.states) : null),
        el("td", { class: "mono", text: g.id }),
        el("td", {}, badge(g.status)),
        el("td", { class: "num", text: g.attempts }),
        el("td", { class: "num", text: g.units ? seconds(g.duration) : "-" }),
        el("td", { class: "num", text: when(g.started) }),
        el("td", { text: "-" }),
        el("td", {})));
      if (!opened) continue;
      for (const t of opened.tasks) rows.push(taskRow(t, "member"));
      if (opened.tasks.length < opened.total) {
        const more = el("button", { type: "button", class: "more",
          text: `Show ${Math.min(SHOW_MORE, opened.total - opened.tasks.length)} more ` +
            `(${opened.tasks.length} of ${opened.total} shown)` });
        more.addEventListener("click", () => showMore(g));
        rows.push(el("tr", { class: "more-row", dataset: { groupId: g.id } },
          el("td", { colspan: 8 }, more)));
      }
    }
    body.replaceChildren(...rows);
    setRange(`${nodes.length} graph nodes, ${total} tasks`, total, true, true);
    document.getElementById("tasks").dataset.form = "grouped";
    markReady("tasks");
  }

  async function fetchMembers(g, offset) {
    const query = new URLSearchParams({ group: g.id, offset, limit: SHOW_MORE });
    return getJSON(`${api}/tasks?${query}`);
  }

  async function toggleGroup(g) {
    if (table.open.has(g.id)) {
      table.open.delete(g.id);
    } else {
      const page = await fetchMembers(g, 0);
      table.open.set(g.id, { tasks: page.tasks, total: page.total });
    }
    if (grouped()) renderGroups();
  }

  async function showMore(g) {
    const opened = table.open.get(g.id);
    if (!opened) return;
    const page = await fetchMembers(g, opened.tasks.length);
    if (page.offset !== opened.tasks.length) return;  // a click while one was on its way
    opened.tasks.push(...page.tasks);
    opened.total = page.total;
    if (grouped()) renderGroups();
  }

  /** The open nodes' tasks again (a live run's change their states, and grow). */
  async function refreshOpen() {
    for (const [id, opened] of table.open) {
      const g = doc.groups.find((group) => group.id === id);
      if (!g) { table.open.delete(id); continue; }
      const query = new URLSearchParams({ group: id, offset: 0,
        limit: Math.max(opened.tasks.length, SHOW_MORE) });
      const page = await getJSON(`${api}/tasks?${query}`);
      table.open.set(id, { tasks: page.tasks, total: page.total });
    }
  }

  async function loadTasks() {
    if (table.loading) { table.again = true; return; }
    table.loading = true;
    try {
      if (grouped()) {
        await refreshOpen();
        renderGroups();
        return;
      }
      const query = new URLSearchParams({ offset: table.offset, limit: table.limit });
      if (tStatus.value) query.set("status", tStatus.value);
      if (tName.value.trim()) query.set("name", tName.value.trim());
      if (table.group) query.set("group", table.group.id);
      const page = await getJSON(`${api}/tasks?${query}`);
      if (grouped()) return;  // the filters were cleared meanwhile: the again-load draws
      const body = document.querySelector("#tasks tbody");
      body.replaceChildren(...page.tasks.map((t) => taskRow(t)));
      if (!page.tasks.length) {
        body.append(el("tr", {}, el("td", { colspan: 8, class: "note",
          text: doc && doc.status === "Running" ? "No task of this run has finished yet." : "No task matches." })));
      }
      const last = Math.min(page.offset + page.limit, page.total);
      setRange(page.total ? `${page.offset + 1}–${last} of ${page.total}` : "0 of 0", page.total,
        page.offset === 0, last >= page.total);
      document.getElementById("tasks").dataset.form = "tasks";
      markReady("tasks");
    } finally {
      table.loading = false;
      if (table.again) { table.again = false; loadTasks(); }
    }
  }

  function setupTasks() {
    for (const state of ["Succeeded", "Failed", "Cancelled", "Checkpoint", "CacheHit", "Skipped", "Running", "Pending", "NotRun"]) {
      tStatus.append(el("option", { value: state, text: state }));
    }
    const reload = () => { table.offset = 0; loadTasks(); };
    tStatus.addEventListener("change", reload);
    tName.addEventListener("input", debounce(reload, 250));
    tByTask.addEventListener("change", reload);
    document.getElementById("t-prev").addEventListener("click", () => {
      table.offset = Math.max(0, table.offset - table.limit); loadTasks();
    });
    document.getElementById("t-next").addEventListener("click", () => {
      table.offset += table.limit; loadTasks();
    });
    document.getElementById("t-group-clear").addEventListener("click", () => {
      table.group = null;
      document.getElementById("t-group-box").hidden = true;
      reload();
    });
    document.getElementById("task-filters").addEventListener("submit", (e) => e.preventDefault());
  }

  // -- live ----------------------------------------------------------------------------------

  let lastText = "";
  function onRun(data) {
    const text = JSON.stringify(data);
    if (text === lastText) return;  // the stream's first document repeats the API's
    lastText = text;
    const first = doc === null;
    doc = data;
    renderFacts();
    renderLegend();
    renderGraph();
    renderFailures();
    loadTimeline();
    loadTasks();
    if (first) document.body.dataset.loaded = "1";
  }

  setupTasks();
  document.getElementById("timeline").addEventListener("mousemove", hover);
  document.getElementById("timeline").addEventListener("mouseleave", () => { document.getElementById("tip").hidden = true; });
  window.addEventListener("resize", debounce(() => { if (doc) drawTimeline(); }, 150));
  setInterval(() => { if (doc && doc.status === "Running") { renderFacts(); drawTimeline(); } }, 1000);
  // The first view comes from the API (the page, its timeline and its tasks at once); then
  // the live stream sends the run's document whenever its record changes.
  let version = 0;
  getJSON(api).then((data) => {
    if (version === 0) onRun(data);
  });
  live(`${api}/events`, {
    run: (data) => { version += 1; onRun(data); },
    gone: () => { document.getElementById("title").textContent = "This run was deleted."; },
  });
})();
