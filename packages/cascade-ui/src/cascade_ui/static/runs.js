/* The runs list: newest first, filtered by target, status and run id prefix; runs that start
   while the page is open appear, and running runs' counts move, from /api/events. */
"use strict";

(() => {
  const { el, badge, chips, seconds, when, live, debounce } = CascadeUI;
  const body = document.querySelector("#runs tbody");
  const form = document.getElementById("filters");
  const inputs = {
    target: document.getElementById("f-target"),
    status: document.getElementById("f-status"),
    q: document.getElementById("f-q"),
  };
  let runs = new Map();
  let source = null;
  let loaded = false;

  const params = new URLSearchParams(location.search);
  for (const [key, input] of Object.entries(inputs)) input.value = params.get(key) || "";

  function filters() {
    const found = {};
    for (const [key, input] of Object.entries(inputs)) {
      const value = input.value.trim();
      if (value) found[key] = value;
    }
    return found;
  }

  function matches(run, wanted) {
    if (wanted.target && run.target !== wanted.target && run.label !== wanted.target) return false;
    if (wanted.status && run.status !== wanted.status) return false;
    if (wanted.q && !run.run_id.startsWith(wanted.q)) return false;
    return true;
  }

  function duration(run) {
    if (run.duration !== null && run.duration !== undefined) return seconds(run.duration);
    if (run.status === "Running") return `${seconds(Date.now() / 1000 - run.started)} so far`;
    return "-";
  }

  function row(run, fresh) {
    const link = el("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, class: "mono",
      title: run.run_id, text: run.short_id });
    const target = el("td", {}, run.name ? el("strong", { text: run.name }) : null,
      run.name ? " " : null, run.label || run.target);
    if (run.label && run.label !== run.target) target.title = `tasks: ${run.target}`;
    const resumed = run.resumed_from
      ? el("a", { href: `/runs/${encodeURIComponent(run.resumed_from)}`, class: "mono",
        text: run.resumed_from.slice(0, 8) })
      : "-";
    return el("tr", { class: fresh ? "new" : null, dataset: { runId: run.run_id, status: run.status } },
      el("td", {}, link),
      target,
      el("td", { class: "status" }, badge(run.status)),
      el("td", { class: "num", text: when(run.started) }),
      el("td", { class: "num duration", text: duration(run) }),
      el("td", { class: "tasks", dataset: { total: run.task_total } }, chips(run.tasks)),
      el("td", {}, resumed));
  }

  function render(freshIds) {
    const ordered = [...runs.values()].sort((a, b) => b.started - a.started);
    body.replaceChildren(...ordered.map((run) => row(run, freshIds && freshIds.has(run.run_id))));
    const empty = document.getElementById("empty");
    const table = document.getElementById("runs");
    if (ordered.length === 0 && loaded) {
      empty.hidden = false;
      table.hidden = true;
      const filtered = Object.keys(filters()).length > 0;
      empty.replaceChildren(filtered
        ? el("p", { text: "No recorded run matches these filters." })
        : el("div", {},
          el("p", { text: "No runs are recorded in this store yet. Record one, and it appears here as it starts:" }),
          el("pre", { text: "cascade run path/to/flow.py:target\n# or, in Python:\ncs.run(target, record=True)" }),
          el("p", { class: "note", text: "The view reads the store cascade run records into (.cascade/runs.sqlite3, or $CASCADE_HOME); pass --store PATH for another file." })));
    } else {
      empty.hidden = true;
      table.hidden = false;
    }
    document.body.dataset.runs = String(ordered.length);
  }

  function connect() {
    if (source) source.close();
    const wanted = filters();
    const query = new URLSearchParams(wanted).toString();
    history.replaceState(null, "", query ? `/?${query}` : "/");
    source = live(`/api/events${query ? `?${query}` : ""}`, {
      runs: (data) => {
        document.getElementById("store").textContent = data.store;
        runs = new Map(data.runs.map((run) => [run.run_id, run]));
        loaded = true;
        render(null);
        document.body.dataset.ready = "1";
      },
      update: (data) => {
        const fresh = new Set();
        for (const run of data.runs) {
          if (matches(run, wanted)) {
            if (!runs.has(run.run_id)) fresh.add(run.run_id);
            runs.set(run.run_id, run);
          } else {
            runs.delete(run.run_id);
          }
        }
        render(fresh);
      },
    });
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  const reconnect = debounce(connect, 250);
  for (const input of Object.values(inputs)) input.addEventListener("input", reconnect);
  // Running runs' durations move on their own.
  setInterval(() => {
    for (const cell of body.querySelectorAll("tr[data-status='Running'] td.duration")) {
      const run = runs.get(cell.parentElement.dataset.runId);
      if (run) cell.textContent = duration(run);
    }
  }, 1000);
  connect();
})();
