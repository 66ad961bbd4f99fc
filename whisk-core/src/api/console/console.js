// whisk console: a single-page app over the platform's own OpenWhisk REST API and its
// Prometheus /metrics. Plain JavaScript, no build step. Every text that comes from the API is
// put into the page with textContent, never as HTML.
"use strict";

(function () {
  const KEY_STORAGE = "whisk.console.key";
  const API = "/api/v1/namespaces/_";
  const METRICS_EVERY_MS = 2000;
  const ACTIVATIONS_EVERY_MS = 5000;
  const ENTITIES_EVERY_MS = 15000;
  const ACTIVATIONS_LIMIT = 25;
  // 2 minutes of 2-second samples.
  const WINDOW_POINTS = 60;

  const $ = (id) => document.getElementById(id);

  // State of the session (the key lives in sessionStorage, never in a URL).
  let authHeader = null;
  let timers = [];
  const expanded = new Set();

  // ---- HTTP -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Calls the API with the session's key; resolves to {status, body} for 2xx and 502
  // (an action's error still carries its activation), rejects with ApiError otherwise.
  async function api(method, path, body) {
    const headers = { Authorization: authHeader, Accept: "application/json" };
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "the platform did not answer (" + e.message + ")");
    }
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (resp.ok || resp.status === 502) {
      return { status: resp.status, body: json };
    }
    const msg = json && typeof json.error === "string" ? json.error : text || resp.statusText;
    if (resp.status === 401) {
      onUnauthorized(msg);
    }
    throw new ApiError(resp.status, msg);
  }

  function basicAuth(key) {
    // btoa needs Latin-1: encode the key as UTF-8 bytes first.
    const bytes = new TextEncoder().encode(key);
    let bin = "";
    bytes.forEach((b) => (bin += String.fromCharCode(b)));
    return "Basic " + btoa(bin);
  }

  // ---- login ------------------------------------------------------------------------------

  async function login(key, fromStorage) {
    const err = $("login-error");
    err.textContent = "";
    key = key.trim();
    const colon = key.indexOf(":");
    if (colon <= 0 || colon === key.length - 1) {
      err.textContent = "A key has the form uuid:key.";
      return;
    }
    authHeader = basicAuth(key);
    let namespaces;
    try {
      namespaces = (await api("GET", "/api/v1/namespaces")).body;
    } catch (e) {
      authHeader = null;
      sessionStorage.removeItem(KEY_STORAGE);
      err.textContent =
        e.status === 401 ? "Authentication failed: " + e.message : "Cannot log in: " + e.message;
      if (fromStorage) showLogin();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key").value = "";
    $("namespace").textContent = Array.isArray(namespaces) ? namespaces.join(", ") : "";
    showApp();
  }

  function onUnauthorized(msg) {
    if (!authHeader) return;
    logout();
    $("login-error").textContent = "Authentication failed: " + msg;
  }

  function logout() {
    authHeader = null;
    sessionStorage.removeItem(KEY_STORAGE);
    timers.forEach((t) => clearInterval(t));
    timers = [];
    expanded.clear();
    $("namespace").textContent = "";
    showLogin();
  }

  function showLogin() {
    $("app").hidden = true;
    $("logout").hidden = true;
    $("refresh").hidden = true;
    $("login").hidden = false;
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    $("refresh").hidden = false;
    charts.reset();
    refreshEntities();
    refreshActivations();
    refreshMetrics();
    timers.push(setInterval(refreshMetrics, METRICS_EVERY_MS));
    timers.push(setInterval(refreshActivations, ACTIVATIONS_EVERY_MS));
    timers.push(setInterval(refreshEntities, ENTITIES_EVERY_MS));
  }

  function reportError(e) {
    if (e instanceof ApiError && e.status === 401) return; // back at the login form
    $("app-error").textContent = e.message;
  }

  // ---- entities ---------------------------------------------------------------------------

  // "pkg/name" for an action in a package of the namespace, else "name".
  function actionPath(a) {
    const slash = a.namespace.indexOf("/");
    return slash >= 0 ? a.namespace.slice(slash + 1) + "/" + a.name : a.name;
  }

  function annotation(entity, key) {
    const a = (entity.annotations || []).find((x) => x.key === key);
    return a ? a.value : undefined;
  }

  function fqn(ref) {
    if (!ref) return "?";
    if (typeof ref === "string") return ref;
    return "/" + ref.path + "/" + ref.name;
  }

  function fillList(id, items, render) {
    const ul = $(id);
    ul.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement("li");
        const [name, detail] = render(item);
        li.dataset.testid = id.replace(/s$/, "") + "-item";
        li.dataset.name = name;
        const strong = document.createElement("strong");
        strong.textContent = name;
        li.append(strong);
        if (detail) {
          const span = document.createElement("span");
          span.className = "detail";
          span.textContent = detail;
          li.append(" ", span);
        }
        return li;
      })
    );
    $(id + "-count").textContent = "(" + items.length + ")";
  }

  async function refreshEntities() {
    try {
      const [actions, triggers, rules] = await Promise.all(
        ["actions", "triggers", "rules"].map((c) =>
          api("GET", API + "/" + c + "?limit=200").then((r) => r.body || [])
        )
      );
      fillList("actions", actions, (a) => [actionPath(a), annotation(a, "exec") || ""]);
      fillList("triggers", triggers, (t) => [t.name, ""]);
      fillList("rules", rules, (r) => [
        r.name,
        fqn(r.trigger) + " \u2192 " + fqn(r.action) + (r.status ? " (" + r.status + ")" : ""),
      ]);
      fillActionSelect(actions.map(actionPath));
      $("app-error").textContent = "";
    } catch (e) {
      reportError(e);
    }
  }

  function fillActionSelect(names) {
    const select = $("invoke-action");
    const current = select.value;
    select.replaceChildren(
      ...names.map((n) => {
        const o = document.createElement("option");
        o.value = n;
        o.textContent = n;
        return o;
      })
    );
    if (names.includes(current)) select.value = current;
  }

  // ---- invoke -----------------------------------------------------------------------------

  function pathOf(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  async function invoke(ev) {
    ev.preventDefault();
    const err = $("invoke-error");
    err.textContent = "";
    const name = $("invoke-action").value;
    if (!name) {
      err.textContent = "No action to invoke.";
      return;
    }
    const text = $("invoke-payload").value.trim();
    let params;
    try {
      params = text === "" ? {} : JSON.parse(text);
    } catch (e) {
      err.textContent = "Invalid JSON: " + e.message;
      return;
    }
    if (params === null || typeof params !== "object" || Array.isArray(params)) {
      err.textContent = "Invalid JSON: the parameters must be a JSON object.";
      return;
    }
    const button = $("invoke-button");
    const status = $("invoke-status");
    const result = $("invoke-result");
    button.disabled = true;
    status.textContent = "invoking " + name + "\u2026";
    status.className = "";
    result.textContent = "";
    delete result.dataset.activationId;
    try {
      const r = await api("POST", API + "/actions/" + pathOf(name) + "?blocking=true", params);
      const a = r.body || {};
      if (r.status === 202) {
        status.textContent = "still running: activation " + a.activationId;
        result.dataset.activationId = a.activationId || "";
      } else {
        const resp = a.response || {};
        status.textContent =
          (resp.status || "done") + " \u00b7 " + (a.duration ?? "?") + " ms \u00b7 activation " +
          a.activationId;
        status.className = resp.success ? "ok" : "error";
        result.dataset.activationId = a.activationId || "";
        result.textContent = JSON.stringify(resp.result, null, 2);
      }
      refreshActivations();
    } catch (e) {
      status.textContent = "";
      err.textContent = "Invoke failed: " + e.message;
    } finally {
      button.disabled = false;
    }
  }

  // ---- activations ------------------------------------------------------------------------

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function detailRow(a) {
    const tr = document.createElement("tr");
    tr.className = "detail";
    tr.dataset.testid = "activation-detail";
    tr.dataset.id = a.activationId;
    const td = document.createElement("td");
    td.colSpan = 5;
    const resp = a.response || {};
    const h1 = document.createElement("h3");
    h1.textContent = "Result";
    const result = document.createElement("pre");
    result.dataset.testid = "activation-result";
    result.textContent = JSON.stringify(resp.result, null, 2);
    const h2 = document.createElement("h3");
    h2.textContent = "Logs";
    const logs = document.createElement("pre");
    logs.dataset.testid = "activation-logs";
    logs.textContent = (a.logs || []).join("\n") || "(no logs)";
    td.append(h1, result, h2, logs);
    tr.append(td);
    return tr;
  }

  function renderActivations(list) {
    const rows = [];
    for (const a of list) {
      const resp = a.response || {};
      const tr = document.createElement("tr");
      tr.className = "activation " + (resp.success ? "ok" : "failed");
      tr.dataset.testid = "activation-row";
      tr.dataset.id = a.activationId;
      tr.tabIndex = 0;
      tr.title = "Show result and logs";
      tr.append(
        cell(a.activationId, "mono"),
        cell(a.name),
        cell(resp.status || "running", "status"),
        cell(a.duration !== undefined ? a.duration + " ms" : "\u2013"),
        cell(a.start ? new Date(a.start).toLocaleTimeString() : "")
      );
      const toggle = () => {
        if (expanded.has(a.activationId)) expanded.delete(a.activationId);
        else expanded.add(a.activationId);
        renderActivations(list);
      };
      tr.addEventListener("click", toggle);
      tr.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          toggle();
        }
      });
      rows.push(tr);
      if (expanded.has(a.activationId)) rows.push(detailRow(a));
    }
    $("activations").replaceChildren(...rows);
    $("activations-empty").hidden = list.length > 0;
  }

  // Refreshes may overlap: only the latest one started draws.
  let activationsSeq = 0;

  async function refreshActivations() {
    const seq = ++activationsSeq;
    try {
      const r = await api("GET", API + "/activations?docs=true&limit=" + ACTIVATIONS_LIMIT);
      if (seq !== activationsSeq || !authHeader) return;
      renderActivations(Array.isArray(r.body) ? r.body : []);
    } catch (e) {
      reportError(e);
    }
  }

  // ---- metrics ----------------------------------------------------------------------------

  // Parses the Prometheus text exposition into [{name, labels, value}].
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[2] || "")) !== null) labels[l[1]] = l[2];
      out.push({ name: m[1], labels, value: parseFloat(m[3]) });
    }
    return out;
  }

  // The totals the charts need from one scrape.
  function summarize(samples) {
    const s = {
      activations: 0,
      errors: 0,
      durationSum: 0,
      durationCount: 0,
      buckets: new Map(), // le -> cumulative count, summed over kinds
      containers: { busy: 0, idle: 0, prewarmed: 0, paused: 0 },
      // Whether this process runs an invoker (whose pool exposes whisk_containers).
      hasInvoker: false,
    };
    for (const x of samples) {
      switch (x.name) {
        case "whisk_activations_total":
          s.activations += x.value;
          if (x.labels.status !== "success") s.errors += x.value;
          break;
        case "whisk_activation_duration_seconds_sum":
          s.durationSum += x.value;
          break;
        case "whisk_activation_duration_seconds_count":
          s.durationCount += x.value;
          break;
        case "whisk_activation_duration_seconds_bucket": {
          const le = x.labels.le === "+Inf" ? Infinity : parseFloat(x.labels.le);
          s.buckets.set(le, (s.buckets.get(le) || 0) + x.value);
          break;
        }
        case "whisk_containers":
          s.hasInvoker = true;
          s.containers[x.labels.state] = (s.containers[x.labels.state] || 0) + x.value;
          break;
      }
    }
    return s;
  }

  // The median of the observations between two scrapes, from their bucket differences (linear
  // within the bucket, as Prometheus' histogram_quantile does); null when nothing was observed.
  function p50(prev, cur) {
    const les = [...cur.buckets.keys()].sort((a, b) => a - b);
    const counts = les.map((le) => cur.buckets.get(le) - ((prev && prev.buckets.get(le)) || 0));
    const total = counts.length ? counts[counts.length - 1] : 0;
    if (total <= 0) return null;
    const rank = total / 2;
    let lower = 0;
    let below = 0;
    for (let i = 0; i < les.length; i++) {
      if (counts[i] >= rank) {
        if (les[i] === Infinity) return lower;
        const inBucket = counts[i] - below;
        const frac = inBucket > 0 ? (rank - below) / inBucket : 0;
        return lower + (les[i] - lower) * frac;
      }
      lower = les[i];
      below = counts[i];
    }
    return lower;
  }

  const charts = {
    prev: null,
    // The scrapes of the window, oldest first (for the window's latency).
    snaps: [],
    // x (unix seconds) and the series of each chart.
    data: null,
    plots: {},
    reset() {
      this.prev = null;
      this.snaps = [];
      this.data = {
        x: [],
        activations: [],
        errors: [],
        p50: [],
        mean: [],
        busy: [],
        idle: [],
        prewarmed: [],
        paused: [],
      };
      for (const id of Object.keys(this.plots)) this.plots[id].destroy();
      this.plots = {};
      for (const id of ["chart-invocations", "chart-latency", "chart-containers"]) {
        $(id).replaceChildren();
      }
    },
    push(cur) {
      const d = this.data;
      const prev = this.prev;
      const round = (v) => (v === null ? null : Math.round(v * 10) / 10);
      d.x.push(Date.now() / 1000);
      // The first scrape is the baseline: nothing happened "in" it.
      const dn = prev ? Math.max(0, cur.activations - prev.activations) : 0;
      const de = prev ? Math.max(0, cur.errors - prev.errors) : 0;
      const dc = prev ? cur.durationCount - prev.durationCount : 0;
      const ds = prev ? cur.durationSum - prev.durationSum : 0;
      d.activations.push(dn);
      d.errors.push(de);
      d.p50.push(prev ? round(dc > 0 ? p50(prev, cur) * 1000 : null) : null);
      d.mean.push(dc > 0 ? round((ds / dc) * 1000) : null);
      for (const k of ["busy", "idle", "prewarmed", "paused"]) d[k].push(cur.containers[k] || 0);
      for (const k of Object.keys(d)) if (d[k].length > WINDOW_POINTS) d[k].shift();
      this.snaps.push(cur);
      if (this.snaps.length > WINDOW_POINTS) this.snaps.shift();
      this.prev = cur;
      this.render(cur);
      // New activations ran: show them in the list too.
      if (dn > 0) refreshActivations();
    },
    render(cur) {
      const d = this.data;
      const sum = (xs) => xs.reduce((a, b) => a + (b || 0), 0);
      const containers = ["busy", "idle", "prewarmed", "paused"].reduce(
        (a, k) => a + (cur.containers[k] || 0),
        0
      );
      const windowCount = sum(d.activations);
      $("stat-activations-total").textContent = String(cur.activations);
      $("stat-activations-window").textContent = String(windowCount);
      $("stat-errors-window").textContent = String(sum(d.errors));
      $("stat-containers").textContent = String(containers);
      $("stat-latency").textContent = this.windowLatency();
      $("charts-note").hidden = cur.hasInvoker;
      // The charts' data, for whoever reads the page (and its test).
      $("chart-invocations").dataset.total = String(windowCount);
      $("chart-invocations").dataset.points = String(d.x.length);
      $("chart-latency").dataset.points = String(d.mean.filter((v) => v !== null).length);
      $("chart-containers").dataset.last = String(containers);
      if (typeof window.uPlot !== "function") return; // the numbers above still show
      this.draw("chart-invocations", [d.x, d.activations, d.errors], [
        { label: "activations", stroke: "#2563eb", fill: "rgba(37,99,235,0.12)" },
        { label: "errors", stroke: "#dc2626" },
      ]);
      this.draw("chart-latency", [d.x, d.p50, d.mean], [
        // Intervals without activations have no latency: points, so lone values show.
        { label: "p50 ms", stroke: "#7c3aed", spanGaps: true, points: { show: true, size: 5 } },
        { label: "mean ms", stroke: "#0891b2", spanGaps: true, points: { show: true, size: 5 } },
      ]);
      this.draw("chart-containers", [d.x, d.busy, d.idle, d.prewarmed, d.paused], [
        { label: "busy", stroke: "#ea580c" },
        { label: "idle", stroke: "#16a34a" },
        { label: "prewarmed", stroke: "#64748b" },
        { label: "paused", stroke: "#a16207" },
      ]);
    },
    // "p50 / mean ms" of the activations between the window's first scrape and its last.
    windowLatency() {
      const first = this.snaps[0];
      const last = this.snaps[this.snaps.length - 1];
      const n = last ? last.durationCount - first.durationCount : 0;
      if (n <= 0) return "\u2013";
      const mean = ((last.durationSum - first.durationSum) / n) * 1000;
      const median = p50(first, last) * 1000;
      return median.toFixed(1) + " / " + mean.toFixed(1) + " ms";
    },
    draw(id, data, series) {
      const el = $(id);
      const width = Math.max(240, el.clientWidth || 320);
      let plot = this.plots[id];
      if (!plot) {
        plot = new window.uPlot(
          {
            width,
            height: 160,
            legend: { live: false },
            cursor: { drag: { x: false, y: false } },
            scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
            series: [{}, ...series.map((s) => Object.assign({ width: 2, points: { show: false } }, s))],
            axes: [{}, { size: 50 }],
          },
          data,
          el
        );
        this.plots[id] = plot;
      } else {
        if (Math.abs(plot.width - width) > 4) plot.setSize({ width, height: 160 });
        plot.setData(data);
      }
    },
  };

  async function refreshMetrics() {
    let text;
    try {
      const resp = await fetch("/metrics", { credentials: "omit", cache: "no-store" });
      if (!resp.ok) throw new Error("GET /metrics: " + resp.status);
      text = await resp.text();
    } catch (e) {
      $("app-error").textContent = "metrics: " + e.message;
      return;
    }
    if (!authHeader) return; // logged out meanwhile
    charts.push(summarize(parseMetrics(text)));
  }

  // ---- wiring -----------------------------------------------------------------------------

  function refreshAll() {
    refreshEntities();
    refreshActivations();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      login($("key").value, false);
    });
    $("logout").addEventListener("click", logout);
    $("refresh").addEventListener("click", refreshAll);
    $("activations-refresh").addEventListener("click", refreshActivations);
    $("invoke-form").addEventListener("submit", invoke);
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) login(saved, true);
    else showLogin();
  });
})();
