// nbhub web UI — the pages.  Each page is an async function that fetches
// what it needs and returns a DOM node; live pages subscribe to the event
// stream and re-render their changing part in place.

import { h, fill, api, session, go, subscribe, onLeave, when, ago, duration, state, scheduleWords,
  errorBox } from "./app.js";
import { dagSvg } from "./dag.js";

const enc = encodeURIComponent;
const TERMINAL = new Set(["success", "failed", "cancelled", "skipped", "upstream_failed"]);

function flash(box, msg, ok) {
  fill(box, h(ok ? "p.ok" : "p.error-box", { role: ok ? "status" : "alert" }, msg));
}

// A handler that reports failures next to the control that caused them.
function guarded(box, fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    try { await fn(ev); } catch (e) { fill(box, errorBox(e)); }
  };
}

// ---- login ------------------------------------------------------------------

export async function login() {
  const msg = h("div", { "aria-live": "polite" });
  const user = h("input", { id: "user", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { id: "pass", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form.card.login", {
    onsubmit: guarded(msg, async () => {
      const r = await api("POST", "/login", { username: user.value, password: pass.value });
      session.user = r.user;
      session.csrf = r.csrf_token;
      // Back where the login was asked for (the proxy and the OAuth step
      // send browsers here with ?next=): only a path of this origin, never
      // "//host" or "/\\host", which browsers read as another origin.
      const next = new URLSearchParams(location.search).get("next");
      if (next && /^\/(?![\/\\])/.test(next)) {
        if (/^\/(user|hub)\//.test(next)) location.assign(next);   // not a page of this UI
        else go(next);
        return;
      }
      go("/flows");
    }),
  },
  h("h1", "Log in to nbhub"),
  h("label", { for: "user" }, "User name"), user,
  h("label", { for: "pass" }, "Password"), pass,
  h("button.primary", { type: "submit" }, "Log in"), msg,
  h("p.muted", "The first start of ", h("code", "nbhub serve"), " prints the admin's one-time password."));
  // Single sign-on (docs/sso.md): a button to the identity provider, and
  // no password form when the server turned password logins off.
  let sso = null;
  try {
    const r = await fetch("/auth/oidc/config", { credentials: "same-origin" });
    if (r.ok) sso = await r.json();
  } catch { /* no SSO: the password form alone */ }
  if (!sso || !sso.enabled) return h("section.center", form);
  const next = new URLSearchParams(location.search).get("next");
  const href = "/auth/oidc/login" + (next && /^\/(?![\/\\])/.test(next) ? "?next=" + encodeURIComponent(next) : "");
  const button = h("a.btn.primary", { id: "sso", href }, `Log in with ${sso.display_name}`);
  if (!sso.local) return h("section.center", h("div.card.login", h("h1", "Log in to nbhub"), h("p", button)));
  form.insertBefore(h("p", button), form.children[1]);
  return h("section.center", form);
}

// ---- flows --------------------------------------------------------------------

function squares(runs) {
  return h("span.squares", runs.map((r) => h("a.sq.st-" + r.state, {
    href: `/runs/${r.id}`, title: `${r.state} · ${new Date(r.logical_date).toLocaleString()}`,
    "aria-label": `run ${r.id}: ${r.state}`,
  })));
}

function emptyState() {
  return h("div.card.empty",
    h("h2", "No flows yet"),
    h("p", "A flow is a YAML file that says which notebooks run, when, and after what. Save this as ",
      h("code", "hello.yaml"), " next to a notebook:"),
    h("pre.code", "name: hello\nschedule: \"0 5 * * *\"      # every day at 05:00\ntimezone: Europe/Berlin\n" +
      "tasks:\n  greet:\n    notebook: hello.ipynb\n    parameters: {day: \"{{ ds }}\"}\n    retries: 2\n"),
    h("p", "Then either drop it into the server's flows directory (it is picked up within a second), or run ",
      h("code", "nbhub flow apply hello.yaml"), ". See docs/flows.md for every option."));
}

export async function flows() {
  const body = h("div");
  async function load() {
    const r = await api("GET", "/flows");
    const rows = r.flows.map((f) => h("tr",
      h("td", h("a.strong", { href: `/flows/${enc(f.name)}` }, f.name),
        f.description ? h("div.muted.small", f.description) : null),
      h("td", f.errors && f.errors.length ? h("span.state.st-failed", "invalid") :
        f.paused ? h("span.state.st-paused", "paused") : h("span.state.st-active", "active")),
      h("td", scheduleWords(f), f.schedule ? h("div", h("code.small", f.schedule)) : null),
      h("td", f.next_run ? when(f.next_run) : "—"),
      h("td", squares(f.recent_runs || [])),
      h("td", f.owner || h("span.muted", "admins"))));
    const broken = (r.broken || []).map((b) => h("div.error-box", h("strong", b.path), h("ul", b.errors.map((e) => h("li", e)))));
    fill(body, 
      r.flows.length ? h("div.scroll", h("table.list",
        h("thead", h("tr", ["Flow", "State", "Schedule", "Next run", "Last runs", "Owner"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", rows))) : emptyState(),
      broken.length ? h("section", h("h2", "Flow files with errors"), broken) : null);
  }
  await load();
  let pending = null;
  onLeave(subscribe((ev) => {
    if (!ev.kind.startsWith("run.") && !ev.kind.startsWith("flow.")) return;
    clearTimeout(pending);
    pending = setTimeout(() => load().catch(() => {}), 150);
  }));
  return h("section", h("h1", "Flows"), body);
}

// ---- one flow -------------------------------------------------------------------

function paramInput(p) {
  const id = "p-" + p.name;
  const type = p.notebook_type || p.type;
  let input;
  if (type === "bool") {
    input = h("select", { id, name: p.name }, h("option", { value: "true", selected: p.default === true }, "True"),
      h("option", { value: "false", selected: p.default !== true }, "False"));
  } else if (type === "int" || type === "float") {
    input = h("input", { id, name: p.name, type: "number", step: type === "int" ? "1" : "any", value: p.default });
  } else if (type === "str") {
    input = h("input", { id, name: p.name, value: p.default ?? "" });
  } else {
    input = h("input", { id, name: p.name, value: JSON.stringify(p.default), "data-json": "1" });
  }
  input.dataset.type = type;
  return h("div.field",
    h("label", { for: id }, p.name, " ", h("span.muted.small", type)),
    input,
    p.help ? h("div.muted.small", p.help) : null);
}

function readParams(form, params) {
  const out = {};
  for (const p of params) {
    const el = form.elements.namedItem(p.name);
    const t = el.dataset.type;
    let v = el.value;
    if (t === "bool") v = v === "true";
    else if (t === "int") v = parseInt(v, 10);
    else if (t === "float") v = parseFloat(v);
    else if (el.dataset.json) v = JSON.parse(v);
    if (JSON.stringify(v) !== JSON.stringify(p.default)) out[p.name] = v;
  }
  return out;
}

export async function flow(name) {
  const [f, pr, runs] = await Promise.all([
    api("GET", `/flows/${enc(name)}`),
    api("GET", `/flows/${enc(name)}/parameters`),
    api("GET", `/flows/${enc(name)}/runs?limit=15`),
  ]);
  const spec = f.spec || {};
  const tasks = spec.tasks || [];
  const msg = h("div", { "aria-live": "polite" });

  // Trigger with parameters.
  const params = pr.parameters || [];
  const trig = h("form.card", {
    onsubmit: guarded(msg, async (ev) => {
      const body = { params: readParams(ev.target, params) };
      const r = await api("POST", `/flows/${enc(name)}/runs`, body);
      go(`/runs/${r.id}`);
    }),
  }, h("h2", "Trigger a run"),
  params.length ? params.map(paramInput) : h("p.muted", "This flow declares no parameters."),
  h("button.primary", { type: "submit" }, "Trigger"));

  const pause = h("button", {
    type: "button",
    onclick: guarded(msg, async () => {
      await api("POST", `/flows/${enc(name)}/${f.paused ? "resume" : "pause"}`);
      go(location.pathname);
    }),
  }, f.paused ? "Resume" : "Pause");

  const from = h("input", { id: "bf-from", type: "date", required: true });
  const to = h("input", { id: "bf-to", type: "date", required: true });
  const backfill = h("form.card", {
    onsubmit: guarded(msg, async () => {
      const r = await api("POST", `/flows/${enc(name)}/backfill`, { from: from.value, to: to.value });
      flash(msg, `Backfill queued: ${(r.runs || []).length} run(s).`, true);
    }),
  }, h("h2", "Backfill"),
  spec.schedule ? [h("div.row", h("label", { for: "bf-from" }, "From"), from, h("label", { for: "bf-to" }, "To"), to),
    h("button", { type: "submit" }, "Backfill")] : h("p.muted", "On-demand flows have no ticks to backfill."));

  // Grid of task x run states (Airflow's grid), newest run on the right.
  const detail = await Promise.all(runs.runs.slice(0, 15).map((r) => api("GET", `/runs/${r.id}`).catch(() => null)));
  const cols = detail.filter(Boolean).reverse();
  const grid = cols.length ? h("div.scroll", h("table.grid",
    h("thead", h("tr", h("th", { scope: "col" }, "Task"), cols.map((r) => h("th", { scope: "col" },
      h("a.sq.st-" + r.state, { href: `/runs/${r.id}`, title: `${r.run_id}: ${r.state}`, "aria-label": `run ${r.id}` }))))),
    h("tbody", tasks.map((t) => h("tr", h("th", { scope: "row" }, t.name), cols.map((r) => {
      const tr = (r.tasks || []).find((x) => x.name === t.name);
      const st = tr ? tr.state : "none";
      return h("td", h("a.sq.st-" + st, { href: `/runs/${r.id}`, title: `${t.name}: ${st}`, "aria-label": `${t.name} in run ${r.id}: ${st}` }));
    })))))) : h("p.muted", "No runs yet.");

  return h("section",
    h("div.head", h("h1", f.name), f.paused ? h("span.state.st-paused", "paused") : null, pause),
    f.description ? h("p", f.description) : null,
    h("p.muted", scheduleWords(f), f.schedule ? [" · ", h("code", f.schedule)] : null,
      f.next_run ? [" · next ", when(f.next_run)] : null, f.owner ? ` · owner ${f.owner}` : ""),
    (f.errors || []).length ? h("div.error-box", h("ul", f.errors.map((e) => h("li", e)))) : null,
    msg,
    h("h2", "Tasks"), h("div.card.dag", dagSvg(tasks)),
    h("h2", "Recent runs"), grid,
    h("div.cols", trig, backfill));
}

// ---- runs -------------------------------------------------------------------------

export async function runs() {
  const r = await api("GET", "/runs?limit=50");
  return h("section", h("h1", "Runs"),
    r.runs.length ? h("div.scroll", h("table.list",
      h("thead", h("tr", ["Run", "Flow", "State", "Logical date", "Started", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", r.runs.map((x) => h("tr",
        h("td", h("a", { href: `/runs/${x.id}` }, x.run_id)),
        h("td", h("a", { href: `/flows/${enc(x.flow)}` }, x.flow)),
        h("td", state(x.state)), h("td", when(x.logical_date)), h("td", ago(x.started_at)),
        h("td", duration(x.started_at, x.ended_at))))))) : h("p.muted", "No runs yet."));
}

// A duration that keeps counting while b (the end) is unknown: the run
// page's 1 s ticker updates every [data-since] in place (re-drawing the
// table would take the keyboard focus away).
function liveDuration(a, b) {
  return a && !b ? h("span", { dataset: { since: a } }, duration(a)) : duration(a, b);
}

function timeline(run) {
  const ts = (run.tasks || []).filter((t) => t.started_at);
  if (!ts.length) return h("p.muted", "No task has started yet.");
  const t0 = Math.min(...ts.map((t) => +new Date(t.started_at)));
  const t1 = Math.max(...ts.map((t) => +new Date(t.ended_at || Date.now())), t0 + 1);
  return h("div.timeline", ts.map((t) => {
    const a = +new Date(t.started_at), b = +new Date(t.ended_at || Date.now());
    const bar = h("span.bar.st-" + t.state, { title: `${t.name}: ${duration(t.started_at, t.ended_at)}` });
    bar.style.marginLeft = `${((a - t0) / (t1 - t0)) * 100}%`;
    bar.style.width = `${Math.max(((b - a) / (t1 - t0)) * 100, 0.5)}%`;
    return h("div.tl-row", h("span.tl-name", t.name), h("span.tl-track", bar), h("span.tl-dur", liveDuration(t.started_at, t.ended_at)));
  }));
}

// One task's Spark application: where it ran and its jobs as progress bars.
function sparkTask(name, d) {
  const p = d.progress || { jobs: [], totals: {} };
  const where = d.mode === "ephemeral" ? `ephemeral cluster ${d.cluster}` : d.mode === "cluster" ? `cluster ${d.cluster}` : "local";
  return h("div.spark", { dataset: { task: name } },
    h("h2", `Spark · ${name}`),
    h("p.small.muted", where, " · ", h("code", d.master_url || ""), d.app_id ? [" · application ", h("code", d.app_id)] : null,
      " · ", d.state || "", d.message ? h("span.err", ` · ${d.message}`) : null),
    // The Spark UIs through nbhub's proxy, while there is something to see:
    // the application's while it runs, the cluster's while it is up.
    d.ui_path && d.state === "running" ? h("p.small",
      d.app_ui_path ? [h("a", { href: d.app_ui_path, target: "_blank", rel: "noopener" }, "Spark application UI"), " · "] : null,
      h("a", { href: d.ui_path, target: "_blank", rel: "noopener" }, "Spark master UI")) : null,
    p.jobs.length ? h("table.list.small", h("thead", h("tr", ["Job", "Status", "Tasks", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", p.jobs.map((j) => h("tr", { dataset: { job: String(j.id), status: j.status } },
        h("td", `${j.id} ${j.name}`), h("td", j.status), h("td", `${j.done}/${j.tasks}${j.failed ? `, ${j.failed} failed` : ""}`),
        h("td", h("progress", { max: String(j.tasks || 1), value: String(j.done), "aria-label": `job ${j.id} progress` })))))) :
      h("p.small.muted", "no Spark job yet"));
}

export async function run(id) {
  const msg = h("div", { "aria-live": "polite" });
  const head = h("div"), tasksBox = h("div"), tl = h("div"), logBox = h("pre.log", { tabindex: "0", "aria-label": "task log" });
  const logSel = h("select", { id: "log-task", "aria-label": "task whose log is shown" });
  let cur = null, logTask = null, logTimer = null, sparkTimer = null;
  const sparkBox = h("div"), sparkSeen = new Map();   // task -> its /spark document, once a task has one

  // The Spark side of tasks (cluster, application, jobs with progress), read
  // every 2 s while a task runs; a finished task's once.
  async function loadSpark(r) {
    const tasks = (r.tasks || []).filter((t) => t.has_spark && (!TERMINAL.has(t.state) || !sparkSeen.has(t.name)));
    await Promise.all(tasks.map(async (t) => {
      try { sparkSeen.set(t.name, await api("GET", `/runs/${id}/tasks/${enc(t.name)}/spark`)); }
      catch { /* shown on the next refresh */ }
    }));
    showSpark();
  }

  function showSpark() {
    const rows = [...sparkSeen].filter(([, d]) => d);
    fill(sparkBox, rows.length ? rows.map(([name, d]) => sparkTask(name, d)) : null);
  }

  async function loadLog() {
    if (!logTask) return;
    try {
      const t = await api("GET", `/runs/${id}/tasks/${enc(logTask)}/log?tail=65536`);
      const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
      logBox.textContent = t || "(empty)";
      if (atEnd) logBox.scrollTop = logBox.scrollHeight;
    } catch (e) {
      logBox.textContent = e.status === 404 ? "(no log yet)" : String(e.message);
    }
  }

  // post_mortem: the failed task's kernel is kept; `nbhub runs debug` opens
  // a console on it (the connection file is the task's account's alone, so
  // the page offers the command, not the file), and the button ends it.
  function keptKernel(t) {
    if (!t.kernel_kept_until) return null;
    const until = new Date(t.kernel_kept_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return h("div.small.kept", { dataset: { kept: t.kernel_kept_until } },
      `kernel kept until ${until} · `, h("code", `nbhub runs debug ${id} ${t.name}`), " ",
      h("button.small", { type: "button", onclick: guarded(msg, async () => {
        await api("DELETE", `/runs/${id}/tasks/${enc(t.name)}/kernel`);
        render(await api("GET", `/runs/${id}`));
      }) }, "End kernel"));
  }

  function render(r) {
    cur = r;
    const live = !TERMINAL.has(r.state);
    fill(head, 
      h("div.head", h("h1", `Run ${r.run_id}`), state(r.state),
        live ? h("button.danger", { type: "button", onclick: guarded(msg, async () => {
          if (!confirm(`Cancel run ${r.run_id}?`)) return;
          await api("POST", `/runs/${id}/cancel`);
        }) }, "Cancel run") : null,
        h("button", { type: "button", onclick: guarded(msg, async () => {
          const n = await api("POST", `/flows/${enc(r.flow)}/runs`, { params: r.params || {} });
          go(`/runs/${n.id}`);
        }) }, "Run again")),
      h("p.muted", "flow ", h("a", { href: `/flows/${enc(r.flow)}` }, r.flow), " · ", r.kind, " · logical date ",
        when(r.logical_date), " · started ", when(r.started_at), " · ", liveDuration(r.started_at, r.ended_at)),
      Object.keys(r.params || {}).length ? h("p.small", "parameters: ", h("code", JSON.stringify(r.params))) : null);
    fill(tasksBox, h("div.scroll", h("table.list",
      h("thead", h("tr", ["Task", "State", "Try", "Started", "Duration", "Output", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", (r.tasks || []).map((t) => h("tr", { dataset: { task: t.name, state: t.state } },
        h("th", { scope: "row" }, t.name),
        h("td", state(t.state), t.error ? h("div.small.err", t.error) : null, keptKernel(t)),
        h("td", `${t.try_number}/${t.max_tries}`),
        h("td", when(t.started_at)), h("td", liveDuration(t.started_at, t.ended_at)),
        h("td", t.has_output ? h("a", { href: `/runs/${id}/tasks/${enc(t.name)}/output` }, "notebook") : "—"),
        h("td", !TERMINAL.has(t.state) && t.state !== "pending" ? h("button.small", { type: "button",
          onclick: guarded(msg, () => api("POST", `/runs/${id}/tasks/${enc(t.name)}/cancel`)) }, "Cancel") : null)))))));
    fill(tl, timeline(r));
    const names = (r.tasks || []).filter((t) => t.has_log).map((t) => t.name);
    if (!logTask && names.length) logTask = names[0];
    fill(logSel, ...names.map((n) => h("option", { value: n, selected: n === logTask }, n)));
    clearInterval(logTimer);
    const lt = (r.tasks || []).find((t) => t.name === logTask);
    if (lt && !TERMINAL.has(lt.state)) logTimer = setInterval(loadLog, 1000);   // follow a running task's log
    clearInterval(sparkTimer);
    loadSpark(r);
    // Progress arrives as task.spark events; a slow poll covers a stream that is down.
    if (live) sparkTimer = setInterval(() => loadSpark(cur), 15000);
  }

  render(await api("GET", `/runs/${id}`));
  loadLog();   // the task table is the page; the log follows when it comes
  logSel.addEventListener("change", () => { logTask = logSel.value; render(cur); loadLog(); });
  let pending = null;
  onLeave(subscribe((ev) => {
    if (String(ev.run) !== String(id)) return;
    if (ev.kind === "task.spark") {
      sparkSeen.set(ev.task, ev.spark);
      showSpark();
      return;
    }
    clearTimeout(pending);
    pending = setTimeout(async () => {
      try { render(await api("GET", `/runs/${id}`)); loadLog(); } catch { /* shown on the next event */ }
    }, 50);
  }));
  const ticker = setInterval(() => {
    for (const el of document.querySelectorAll("[data-since]")) el.textContent = duration(el.dataset.since);
  }, 1000);
  onLeave(() => { clearInterval(logTimer); clearInterval(sparkTimer); clearInterval(ticker); });
  return h("section", head, msg, h("h2", "Tasks"), tasksBox, sparkBox, h("h2", "Timeline"), tl,
    h("h2", "Log ", logSel), logBox);
}

// ---- an output notebook ------------------------------------------------------------

export async function output(id, task) {
  const base = `/api/v1/runs/${id}/tasks/${enc(task)}`;
  // The notebook is rendered by nbhub (nbhtml.c) and served with
  // `Content-Security-Policy: sandbox`; the iframe is sandboxed too (no
  // scripts, no same-origin), so nothing in it can act as the viewer.
  const frame = h("iframe.nb", { src: `${base}/output.html`, title: `output notebook of ${task}`,
    sandbox: "allow-popups allow-popups-to-escape-sandbox", referrerpolicy: "no-referrer" });
  return h("section.wide",
    h("div.head", h("h1", `${task} · run ${id}`),
      h("a.btn", { href: `/runs/${id}` }, "Back to the run"),
      h("a.btn", { href: `${base}/output`, download: `${task}.ipynb` }, "Download .ipynb")),
    frame);
}

// ---- users (admins) ----------------------------------------------------------------

export async function users() {
  // Not admin: GET /users answers 403, shown as the page's error.
  const msg = h("div", { "aria-live": "polite" });
  const list = h("div"), tokens = h("div");

  async function showTokens(name) {
    const r = await api("GET", `/users/${enc(name)}/tokens`);
    const tname = h("input", { id: "tok-name", placeholder: "laptop", required: true });
    fill(tokens, h("div.card", h("h2", `Tokens of ${name}`),
      (r.tokens || []).length ? h("table.list", h("thead", h("tr", ["Name", "Created", "Expires", "Last used", ""].map((t) => h("th", t)))),
        h("tbody", r.tokens.map((t) => h("tr", h("td", t.name), h("td", when(t.created_at)), h("td", when(t.expires_at)),
          h("td", when(t.last_used_at)), h("td", h("button.small.danger", { type: "button", onclick: guarded(msg, async () => {
            await api("DELETE", `/users/${enc(name)}/tokens/${t.id}`);
            showTokens(name);
          }) }, "Revoke")))))) : h("p.muted", "No tokens."),
      h("form.row", { onsubmit: guarded(msg, async () => {
        const t = await api("POST", `/users/${enc(name)}/tokens`, { name: tname.value });
        showTokens(name);
        flash(msg, "", true);
        fill(msg, h("div.ok", { role: "status" }, "New token (shown once, copy it now): ", h("code.token", t.token)));
      }) }, h("label", { for: "tok-name" }, "New token"), tname, h("button", { type: "submit" }, "Create"))));
  }

  async function load() {
    const r = await api("GET", "/users");
    fill(list, h("table.list", h("thead", h("tr", ["User", "Admin", "Created", "State", ""].map((t) => h("th", t)))),
      h("tbody", r.users.map((u) => h("tr", h("td", u.name), h("td", u.admin ? "yes" : "no"), h("td", when(u.created_at)),
        h("td", u.disabled ? "disabled" : "active"),
        h("td", h("button.small", { type: "button", onclick: guarded(msg, () => showTokens(u.name)) }, "Tokens")))))));
  }
  const nu = h("input", { id: "nu-name", required: true, autocomplete: "off" });
  const np = h("input", { id: "nu-pass", type: "password", required: true, autocomplete: "new-password", minlength: 8 });
  const na = h("input", { id: "nu-admin", type: "checkbox" });
  const form = h("form.card", { onsubmit: guarded(msg, async () => {
    await api("POST", "/users", { name: nu.value, password: np.value, admin: na.checked });
    flash(msg, `User ${nu.value} created.`, true);
    nu.value = np.value = "";
    load();
  }) }, h("h2", "Add a user"),
  h("label", { for: "nu-name" }, "Name"), nu, h("label", { for: "nu-pass" }, "Password"), np,
  h("label.check", na, " admin"), h("button.primary", { type: "submit" }, "Add"));
  await load();
  return h("section", h("h1", "Users and tokens"), msg, list, h("div.cols", form, tokens));
}

// ---- the hub: your notebook server (docs/hub.md) --------------------------------------

// Sizes come as bytes (numbers) or as written in nbhub.yaml ("2g").
function bytes(n) {
  if (n === null || n === undefined || n === "") return null;
  if (typeof n !== "number") {
    const m = /^(\d+(?:\.\d+)?)([kmgt])$/i.exec(String(n));   // as nbhub.yaml writes it: "2g"
    return m ? `${m[1]} ${m[2].toUpperCase()}iB` : String(n);
  }
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${u[i]}`;
}

function cpus(c) {
  if (c === null || c === undefined || c === "" || c === 0) return null;
  return typeof c === "number" ? `${c} CPU${c === 1 ? "" : "s"}` : `${c} CPU`;
}

// What a profile gives: "1 CPU · 2.0 GiB memory · Spark: 2 workers × 1.0 GiB (Spark Connect)".
function profileGives(p) {
  const l = p.limits || {};
  const parts = [cpus(l.cpu), bytes(l.memory) ? `${bytes(l.memory)} memory` : null].filter(Boolean);
  if (!parts.length) parts.push("no limits");
  if (p.spark && p.spark.workers) {
    const wm = bytes(p.spark.worker_memory);
    parts.push(`Spark: ${p.spark.workers} worker${p.spark.workers === 1 ? "" : "s"}${wm ? ` × ${wm}` : ""}` +
      (p.spark.connect ? " (Spark Connect)" : ""));
  }
  return parts.join(" · ");
}

// The API names the unnamed server "default" in its paths.
function serverPath(sv) {
  return `/servers/${enc(sv.owner)}/${enc(sv.name || "default")}`;
}

// Where JupyterLab opens: the server's URL (/user/NAME/[SERVER/]) and its
// profile's default_url (/lab), without a doubled slash.
function labHref(sv, profiles) {
  const p = (profiles || []).find((x) => x.name === sv.profile);
  const base = sv.url || "";
  const du = (p && p.default_url) || "";
  return du ? base.replace(/\/$/, "") + "/" + du.replace(/^\//, "") : base;
}

// The viewer, also on a page drawn before the router's GET /me came back.
async function viewer() {
  if (!session.user) {
    const me = await api("GET", "/me");
    session.user = me;
    session.csrf = me.csrf_token || session.csrf;
  }
  return session.user;
}

// One server's progress, from .../progress (JupyterHub's events: {progress,
// message}, then {ready, url} or {failed, message}).  onEnd(ok, ev) once;
// returns the function that stops following.
function followProgress(sv, box, onEnd) {
  const bar = h("progress", { max: "100", value: "0", "aria-label": `start of ${sv.name || "default"} server` });
  const msgs = h("ol.small.progress-log", { "aria-live": "polite" });
  fill(box, h("div.row", bar, h("span.small.muted", "starting…")), msgs);
  const es = new EventSource("/api/v1" + serverPath(sv) + "/progress");
  let done = false;
  const end = (ok, ev) => {
    if (done) return;
    done = true;
    es.close();
    onEnd(ok, ev);
  };
  es.onmessage = (m) => {
    let ev = null;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (typeof ev.progress === "number") bar.value = ev.progress;
    if (ev.message) msgs.append(h("li", ev.message));
    if (ev.ready) end(true, ev);
    else if (ev.failed) end(false, ev);
  };
  // The stream ends after its last event; a stream lost before it is
  // reconnected by EventSource, and an answer that is no stream (the start
  // was over before we asked) closes it: the page reloads the server then.
  es.onerror = () => { if (es.readyState === EventSource.CLOSED) end(null, null); };
  return () => { done = true; es.close(); };
}

// The hub's stop reason ("culled: idle for 312 s (cull.timeout 300 s)")
// with its seconds in words: "culled: idle for 5 min (cull.timeout 5 min)".
function stopReason(r) {
  return r.replace(/\b(\d+) s\b/g, (m, n) => {
    const s = Number(n);
    if (s < 120) return m;
    const min = Math.round(s / 60);
    return min < 120 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
  });
}

// track(fn): fn stops what the card started (its progress stream) when the
// list is drawn again or the page is left.
function serverCard(sv, profiles, reload, msg, track) {
  const name = sv.name || "default";
  const live = sv.state === "running" || sv.state === "starting";
  const progressBox = h("div.progress");
  const lab = sv.state === "running" ? h("a.btn.primary", { href: labHref(sv, profiles), target: "_blank",
    rel: "noopener" }, "Open JupyterLab") : null;
  const stop = live || sv.state === "stopping" ? h("button.danger", { type: "button", disabled: sv.state === "stopping",
    onclick: guarded(msg, async () => {
      await api("DELETE", serverPath(sv));
      reload();
    }) }, sv.state === "stopping" ? "Stopping…" : "Stop") : null;
  // A named server that is not running can be removed (its row goes).
  const remove = sv.name && !live && sv.state !== "stopping" ? h("button", { type: "button",
    onclick: guarded(msg, async () => {
      await api("DELETE", serverPath(sv) + "?remove=1");
      reload();
    }) }, "Remove") : null;
  const card = h("div.card.server", { dataset: { server: name, state: sv.state } },
    h("div.head", h("h2", name === "default" ? "Your server" : `Server ${name}`), state(sv.state), lab, stop, remove),
    h("p.small.muted", "profile ", h("strong", sv.profile || "—"),
      sv.started_at ? [" · started ", ago(sv.started_at)] : null,
      sv.last_activity ? [" · last activity ", ago(sv.last_activity)] : null,
      bytes(sv.memory) ? ` · ${bytes(sv.memory)} in use` : null),
    sv.state === "running" ? h("p.small", h("code", labHref(sv, profiles))) : null,
    sv.state === "stopped" && sv.stop_reason ? h("p.small.muted.stop-reason", "Stopped: ", stopReason(sv.stop_reason)) : null,
    sv.spark ? h("p.small.spark", "Spark cluster ", h("code", sv.spark.cluster || ""),
      sv.spark.state ? ` (${sv.spark.state})` : null,
      sv.spark.ui_url ? [" · ", h("a", { href: sv.spark.ui_url, target: "_blank", rel: "noopener" }, "Spark UI")] : null) : null,
    sv.state === "failed" ? h("div.error-box", { role: "alert" }, h("strong", "The server did not start: "),
      // The hub's message may quote the log tail, which is shown below as lines.
      (sv.log_tail && sv.error ? sv.error.split(" The last lines of its log:")[0] : sv.error) || "no reason given",
      sv.log_tail ? h("pre.log", sv.log_tail) : null) : null,
    progressBox);
  if (sv.state === "starting") track(followProgress(sv, progressBox, () => reload()));
  return card;
}

export async function server() {
  const me = (await viewer()).name;
  const msg = h("div", { "aria-live": "polite" });
  const list = h("div.servers"), startBox = h("div"), flowsBox = h("div");
  let profiles = [], stops = [];
  const stopAll = () => { for (const f of stops) f(); stops = []; };
  onLeave(stopAll);

  async function load() {
    const r = await api("GET", "/servers");
    // Admins get everyone's here; this page is about the viewer's own:
    // the default server always (even stopped: it says so), named ones
    // while they are not stopped.
    const mine = (r.servers || []).filter((x) => x.owner === me && (x.name === "" || x.state !== "stopped"));
    mine.sort((a, b) => (a.name || "").localeCompare(b.name || ""));
    stopAll();
    fill(list, mine.map((x) => serverCard(x, profiles, load, msg, (f) => stops.push(f))));
    // A stop takes the server's grace time: look again until it is over.
    if (mine.some((x) => x.state === "stopping")) {
      const t = setTimeout(() => load().catch(() => {}), 1000);
      stops.push(() => clearTimeout(t));
    }
  }

  // Profiles: what each gives, as a radio list; a server name for a named one.
  let pr;
  try {
    pr = await api("GET", "/profiles");
  } catch (e) {
    if (e.status === 404 || e.status === 503)
      return h("section", h("h1", "Server"), h("p.muted", "This nbhub serves no notebook servers (no hub: section)."));
    throw e;
  }
  profiles = (pr.profiles || pr || []);
  const usable = profiles.filter((p) => p.allowed !== false);
  const sname = h("input", { id: "server-name", name: "server", placeholder: "leave empty for your default server",
    pattern: "[a-z0-9][a-z0-9._\\-]{0,62}", autocomplete: "off" });
  const radios = usable.map((p, i) => h("label.choice", { for: `profile-${p.name}` },
    h("input", { type: "radio", name: "profile", id: `profile-${p.name}`, value: p.name, checked: i === 0 }),
    h("span.choice-body", h("strong", p.name), p.description ? h("span", ` — ${p.description}`) : null,
      h("div.small.muted", profileGives(p)))));
  const form = h("form.card", { onsubmit: guarded(msg, async (ev) => {
    const choice = ev.target.querySelector("input[name=profile]:checked");
    const body = { profile: choice ? choice.value : undefined };
    if (sname.value) body.name = sname.value;
    fill(msg);
    await api("POST", "/servers", body);
    await load();
  }) },
  h("h2", "Start a server"),
  usable.length ? h("fieldset.choices", h("legend", "Profile"), radios) : h("p.muted", "No profile is open to you."),
  h("div.field", h("label", { for: "server-name" }, "Server name ", h("span.muted.small", "(optional: a named server)")), sname),
  h("button.primary", { type: "submit", disabled: !usable.length }, "Start"));
  fill(startBox, form);

  // The viewer's flows: write a notebook in JupyterLab, schedule it with
  // `notebook: ~/...`, see its runs -- here.
  async function loadFlows() {
    const f = await api("GET", "/flows");
    const own = (f.flows || []).filter((x) => x.owner === me);
    fill(flowsBox, own.length ? h("div.scroll", h("table.list.flows",
      h("thead", h("tr", ["Flow", "Schedule", "Last run", "Runs"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", own.map((x) => h("tr",
        h("td", h("a.strong", { href: `/flows/${enc(x.name)}` }, x.name)),
        h("td", scheduleWords(x), x.paused ? [" ", h("span.state.st-paused", "paused")] : null),
        h("td", x.last_run ? h("a", { href: `/runs/${x.last_run.id}` }, state(x.last_run.state)) : h("span.muted", "never run")),
        h("td", squares(x.recent_runs || []))))))) :
      h("p.muted", "You have no flows yet."),
    h("details.small", h("summary", "Schedule a notebook from your server"),
      h("p", "A notebook you saved in JupyterLab is in your workspace; a flow names it with ", h("code", "~/"), ":"),
      h("pre.code", "name: daily-report\nschedule: \"0 6 * * *\"\ntasks:\n  report:\n    notebook: ~/reports/daily.ipynb\n"),
      h("p", "Apply it with ", h("code", "nbhub flow apply daily-report.yaml"), " (docs/flows.md).")));
  }

  await Promise.all([load(), loadFlows()]);
  let pending = null;
  onLeave(subscribe((ev) => {
    if (!ev.kind.startsWith("run.") && !ev.kind.startsWith("flow.")) return;
    clearTimeout(pending);
    pending = setTimeout(() => loadFlows().catch(() => {}), 150);
  }));
  // Activity and memory change while the page is open.
  const t = setInterval(() => { if (!document.querySelector(".server[data-state=starting]")) load().catch(() => {}); }, 30000);
  onLeave(() => clearInterval(t));
  return h("section", h("h1", "Server"), msg, list, startBox, h("h2", "Your flows"), flowsBox);
}

// ---- every server (admins) ---------------------------------------------------------------

export async function servers() {
  const msg = h("div", { "aria-live": "polite" });
  const body = h("div");
  async function load() {
    // Not admin: the list holds only the viewer's own; the page says so.
    const r = await api("GET", "/servers");
    const all = (r.servers || []).slice().sort((a, b) => (a.owner + "/" + a.name).localeCompare(b.owner + "/" + b.name));
    fill(body, all.length ? h("div.scroll", h("table.list.servers",
      h("thead", h("tr", ["Owner", "Server", "Profile", "State", "Age", "Last activity", "Memory", ""].map((t) =>
        h("th", { scope: "col" }, t)))),
      h("tbody", all.map((sv) => h("tr", { dataset: { owner: sv.owner, server: sv.name || "default", state: sv.state } },
        h("td", sv.owner), h("td", sv.name || h("span.muted", "default")), h("td", sv.profile || "—"),
        h("td", state(sv.state), sv.error ? h("div.small.err", sv.error.split(" The last lines of its log:")[0]) : null,
          sv.state === "stopped" && sv.stop_reason ? h("div.small.muted.stop-reason", stopReason(sv.stop_reason)) : null),
        h("td", sv.state === "running" || sv.state === "starting" ? ago(sv.started_at) : "—"),
        h("td", ago(sv.last_activity)),
        h("td", bytes(sv.memory) || "—"),
        h("td", sv.state === "running" || sv.state === "starting" ? h("button.small.danger", { type: "button",
          "aria-label": `stop ${sv.owner}'s ${sv.name || "default"} server`,
          onclick: guarded(msg, async () => {
            if (!confirm(`Stop ${sv.owner}'s server ${sv.name || "default"}?`)) return;
            await api("DELETE", serverPath(sv));
            await load();
          }) }, "Stop") : null)))))) : h("p.muted", "No servers yet."));
  }
  if (!(await viewer()).admin) {
    return h("section", h("h1", "Servers"), errorBox({ status: 403, message: "only admins see every server" }));
  }
  await load();
  const t = setInterval(() => load().catch(() => {}), 10000);
  onLeave(() => clearInterval(t));
  return h("section", h("h1", "Servers"), msg, body);
}
