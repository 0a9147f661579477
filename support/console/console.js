// qrswitch support console: plain JavaScript, no framework, no build step.
// It talks to the support API (/support/v1) with the user's Basic-auth
// credentials, which it keeps in the variable below for the life of the
// page only. Everything shown is put in the page as text (textContent),
// never as HTML, so nothing a record carries can run as script.
"use strict";

(function () {
  let auth = null; // "Basic …", in memory only
  let me = null; // {username, role}
  let lastSearch = null; // {params, next}
  let currentPartner = null;
  let currentState = "DEAD";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function badge(text, cls) {
    return el("span", { class: "badge " + (cls || text) }, text);
  }

  function fmtTime(t) {
    if (!t) return "";
    const d = new Date(t);
    if (isNaN(d) || d.getUTCFullYear() < 2) return "";
    return d.toISOString().replace("T", " ").replace("Z", "");
  }

  function fmtAge(t) {
    if (!t) return "";
    const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function fmtAmount(amount, currency) {
    if (amount === undefined || amount === null || amount === 0) return "";
    return (amount / 100).toFixed(2) + (currency ? " (" + currency + ")" : "");
  }

  function toast(msg) {
    const t = $("#toast");
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  class APIError extends Error {
    constructor(status, detail) {
      super((detail && ((detail.detailMessage && detail.detailMessage.message) || detail.errorMessage)) || "HTTP " + status);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    const headers = { "Authorization": auth, "X-Qrswitch-Console": "1", "Accept": "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (resp.status === 401) {
      logout("Your session was refused: log in again.");
      throw new APIError(401, data);
    }
    if (!resp.ok) throw new APIError(resp.status, data);
    return data;
  }

  function showError(sel, err) {
    const p = $(sel);
    if (!err) { p.hidden = true; p.textContent = ""; return; }
    let msg = err.message;
    if (err.status === 403) msg = "Your role does not allow this (operators only).";
    p.textContent = msg;
    p.hidden = false;
  }

  // --- login -------------------------------------------------------------

  function show(view) {
    for (const v of ["login-view", "search-view", "payment-view", "saf-view", "rails-view"]) $("#" + v).hidden = v !== view;
    $("#nav-search").classList.toggle("active", view === "search-view" || view === "payment-view");
    $("#nav-saf").classList.toggle("active", view === "saf-view");
    $("#nav-rails").classList.toggle("active", view === "rails-view");
  }

  function logout(msg) {
    auth = null;
    me = null;
    // Nothing read under the last login stays in the page.
    for (const sel of ["#results tbody", "#payment-summary", "#flow", "#advices tbody", "#attempts tbody",
      "#saf tbody", "#partner-advices tbody", "#audit tbody", "#rail-kinds", "#rail-records tbody"]) $(sel).textContent = "";
    $("#partner-detail").hidden = true;
    $("#message-detail").hidden = true;
    $("#more").hidden = true;
    lastSearch = null;
    currentPartner = null;
    $("#nav").hidden = true;
    $("#password").value = "";
    show("login-view");
    showError("#login-error", msg ? new Error(msg) : null);
  }

  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("#username").value.trim();
    const pass = $("#password").value;
    // Basic auth is UTF-8, base64-encoded.
    const bytes = new TextEncoder().encode(user + ":" + pass);
    auth = "Basic " + btoa(String.fromCharCode(...bytes));
    try {
      me = await api("GET", "/support/v1/me");
    } catch (err) {
      auth = null;
      showError("#login-error", err.status === 401 ? new Error("Wrong username or password.") : err);
      $("#login-view").hidden = false;
      return;
    }
    $("#password").value = "";
    showError("#login-error", null);
    $("#whoami").textContent = me.username + " (" + me.role + ")";
    $("#nav").hidden = false;
    document.body.classList.toggle("operator", me.role === "operator");
    route();
  });

  $("#logout").addEventListener("click", () => { location.hash = "#/search"; logout(); });

  function isOperator() { return me && me.role === "operator"; }

  // --- routing -----------------------------------------------------------

  function route() {
    if (!auth) { show("login-view"); return; }
    const h = location.hash || "#/search";
    if (h.startsWith("#/payment/")) {
      openPayment(decodeURIComponent(h.slice("#/payment/".length)));
    } else if (h.startsWith("#/saf")) {
      show("saf-view");
      loadSAF();
    } else if (h.startsWith("#/rails")) {
      show("rails-view");
      loadRails();
    } else {
      show("search-view");
    }
  }
  window.addEventListener("hashchange", route);

  // --- search ------------------------------------------------------------

  function searchParams() {
    const p = new URLSearchParams();
    for (const input of $$("#search-form input, #search-form select")) {
      let v = input.value.trim();
      if (!v) continue;
      if (input.type === "datetime-local") v = new Date(v + "Z").toISOString();
      p.set(input.name, v);
    }
    return p;
  }

  async function runSearch(params, append) {
    showError("#search-error", null);
    let data;
    try {
      data = await api("GET", "/support/v1/transactions?" + params.toString());
    } catch (err) {
      showError("#search-error", err);
      return;
    }
    const body = $("#results tbody");
    if (!append) body.textContent = "";
    for (const r of data.results) {
      const tr = el("tr", { class: "result", "data-key": r.key },
        el("td", { class: "mono" }, fmtTime(r.createdAt)),
        el("td", {}, r.retailerId),
        el("td", { class: "mono" }, r.requestId),
        el("td", {}, badge(r.state)),
        el("td", {}, r.outcome ? badge(r.outcome) : "—"),
        el("td", {}, r.partnerId || ""),
        el("td", {}, fmtAmount(r.amount, r.currency)),
        el("td", {}, r.terminalId || ""),
        el("td", { class: "mono" }, r.rrn || ""));
      tr.addEventListener("click", () => { location.hash = "#/payment/" + encodeURIComponent(r.key); });
      body.append(tr);
    }
    lastSearch = { params, next: data.next };
    $("#more").hidden = !data.next;
    $("#no-results").hidden = body.children.length > 0;
  }

  $("#search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runSearch(searchParams(), false);
  });

  $("#more").addEventListener("click", () => {
    if (!lastSearch || !lastSearch.next) return;
    const p = new URLSearchParams(lastSearch.params);
    p.set("cursor", lastSearch.next);
    runSearch(p, true).then(() => { lastSearch.params.delete("cursor"); });
  });

  $("#lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#lookup").value.trim();
    if (id) location.hash = "#/payment/" + encodeURIComponent(id);
  });

  // --- a payment ---------------------------------------------------------

  async function openPayment(id) {
    show("payment-view");
    showError("#payment-error", null);
    for (const sel of ["#payment-summary", "#advices tbody", "#attempts tbody"]) $(sel).textContent = "";
    $("#flow").textContent = "";
    $("#message-detail").hidden = true;
    let data;
    try {
      data = await api("GET", "/support/v1/transactions/" + encodeURIComponent(id));
    } catch (err) {
      showError("#payment-error", err.status === 404 ? new Error("No transaction has the id " + id + ".") : err);
      return;
    }
    const s = data.results[0];
    renderSummary(s, data.results.length);
    renderFlow(s.trace || []);
    renderAdvices(s.advices || [], s.attempts || []);
  }

  function dl(pairs) {
    const d = el("dl");
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      d.append(el("dt", {}, k), el("dd", {}, v));
    }
    return d;
  }

  function renderSummary(s, n) {
    const box = $("#payment-summary");
    const p = s.payment;
    if (n > 1) box.append(el("p", { class: "hint" }, "This id names " + n + " payments; the newest is shown. Search to see the others."));
    if (!p) {
      box.append(el("h2", {}, "QR code " + (s.qr ? s.qr.tranId : "")), el("p", { class: "hint" }, "No payment request used this QR code yet."));
      return;
    }
    const req = p.request || {};
    const amt = req.amounts && req.amounts.requestAmount;
    const o = (req.originator || {});
    box.append(el("h2", { id: "payment-title" }, "Payment " + p.retailerId + "/" + p.requestId));
    const left = dl([
      ["State", badge(p.state)],
      ["Payment outcome", p.state === "AWAITING_SCAN" || p.state === "FORWARDED" ? "not yet known" : badge(p.payOutcome)],
      ["Answer to retailer", p.status ? String(p.status) + (p.error ? " " + p.error.errorType + ": " + p.error.errorMessage : "") : ""],
      ["Amount", amt ? fmtAmount(amt.amount, amt.currency) : ""],
      ["Created", fmtTime(p.createdAt) + " UTC"],
      ["Updated", fmtTime(p.updatedAt) + " UTC"],
    ]);
    const right = dl([
      ["tranId", el("span", { class: "mono" }, p.tranId || "")],
      ["Partner", p.scan ? p.scan.partnerId + (p.scan.partnerName ? " (" + p.scan.partnerName + ")" : "") : "no scan"],
      ["Merchant / terminal", (o.merchant ? o.merchant.merchantId : "") + " / " + (o.terminalId || "")],
      ["RRN / STAN", (req.rrn || "") + " / " + (req.stan || "")],
      ["Upstream advice", p.adviceKey ? el("span", { class: "mono" }, p.adviceKey) : ""],
      ["Tombstone", p.tombstone ? "a reversal for a request the switch never saw" : ""],
    ]);
    box.append(el("div", { class: "summary-grid" }, left, right));
  }

  // The message flow is a sequence diagram drawn in SVG: a lane each for
  // the retailer, the switch and the partner; an arrow per message; a note
  // over the switch's lane per decision of the switch or action of an
  // operator.
  function renderFlow(trace) {
    const flow = $("#flow");
    const lanes = { retailer: 130, switch: 470, partner: 810 };
    const width = 980, top = 56, row = 46;
    const height = top + row * trace.length + 24;
    flow.setAttribute("width", width);
    flow.setAttribute("height", height);
    flow.setAttribute("viewBox", "0 0 " + width + " " + height);
    const defs = svg("defs");
    for (const [id, color] of [["arrow", "#1f5fbf"], ["arrow-bad", "#b3261e"], ["arrow-warn", "#a86400"]]) {
      const m = svg("marker", { id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
      m.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color }));
      defs.append(m);
    }
    flow.append(defs);
    let retailer = "retailer", partner = "partner";
    for (const t of trace) {
      if (t.peer && t.peer.startsWith("retailer:")) retailer = t.peer;
      if (t.peer && t.peer.startsWith("partner:")) partner = t.peer;
    }
    for (const [name, x, label] of [["retailer", lanes.retailer, retailer], ["switch", lanes.switch, "switch"], ["partner", lanes.partner, partner]]) {
      const g = svg("g", { class: "lane-head", "data-lane": name });
      g.append(svg("rect", { x: x - 100, y: 8, width: 200, height: 28, rx: 5 }));
      g.append(svg("text", { x, y: 27, "text-anchor": "middle" }, label));
      flow.append(g);
      flow.append(svg("line", { class: "lifeline", x1: x, y1: 36, x2: x, y2: height - 8 }));
    }
    const t0 = trace.length ? new Date(trace[0].at).getTime() : 0;
    trace.forEach((t, i) => {
      const y = top + row * i + 22;
      const rel = new Date(t.at).getTime() - t0;
      flow.append(svg("text", { class: "time", x: 4, y: y + 4 }, "+" + (rel / 1000).toFixed(3) + "s"));
      const side = t.peer && t.peer.startsWith("retailer:") ? "retailer" : t.peer && t.peer.startsWith("partner:") ? "partner" : null;
      let g;
      if (side && t.kind !== "event") {
        const peerX = lanes[side];
        const toSwitch = t.direction === "in";
        const x1 = toSwitch ? peerX : lanes.switch, x2 = toSwitch ? lanes.switch : peerX;
        const late = (t.note || "").startsWith("late response ignored");
        const cls = ["msg", late ? "late" : "", t.outcome === "failed" || t.status >= 400 ? "failed" : "", t.outcome === "unknown" ? "unknown" : ""].join(" ").trim();
        const marker = cls.includes("failed") || late ? "arrow-bad" : cls.includes("unknown") ? "arrow-warn" : "arrow";
        g = svg("g", { class: cls, "data-index": String(i), "data-op": t.operation, "data-kind": t.kind });
        g.append(svg("line", { x1, y1: y, x2, y2: y, "marker-end": "url(#" + marker + ")" }));
        g.append(svg("line", { class: "hit", x1, y1: y, x2, y2: y }));
        const parts = [t.operation];
        if (t.kind === "answer") parts.push(t.status ? String(t.status) : t.code || "no answer");
        if (t.outcome) parts.push(t.outcome);
        if (t.latencyMs) parts.push(Math.round(t.latencyMs) + " ms");
        if (late) parts.push("LATE, ignored");
        g.append(svg("text", { x: (x1 + x2) / 2, y: y - 6, "text-anchor": "middle" }, parts.join(" · ")));
      } else {
        const operator = t.peer && t.peer.startsWith("operator:");
        g = svg("g", { class: "note" + (operator ? " operator" : ""), "data-index": String(i), "data-op": t.operation });
        const text = (operator ? t.peer + " — " : "") + t.operation + (t.note ? ": " + t.note : "");
        const shown = text.length > 110 ? text.slice(0, 107) + "…" : text;
        g.append(svg("rect", { x: lanes.switch - 330, y: y - 15, width: 660, height: 24, rx: 4 }));
        g.append(svg("text", { x: lanes.switch, y: y + 2, "text-anchor": "middle" }, shown));
      }
      g.addEventListener("click", () => showMessage(t, g));
      flow.append(g);
    });
  }

  function showMessage(t, g) {
    $$("#flow .selected").forEach((n) => n.classList.remove("selected"));
    g.classList.add("selected");
    $("#message-title").textContent = t.operation + " (" + t.kind + ", " + (t.direction === "in" ? "to the switch" : t.direction === "out" ? "from the switch" : "inside the switch") + ")";
    const f = $("#message-fields");
    f.textContent = "";
    for (const [k, v] of [["At", fmtTime(t.at) + " UTC"], ["Peer", t.peer], ["Message id", t.messageId], ["HTTP status", t.status], ["Code", t.code],
      ["Outcome", t.outcome], ["Latency", t.latencyMs ? t.latencyMs + " ms" : ""], ["Note", t.note]]) {
      if (v === undefined || v === null || v === "") continue;
      f.append(el("dt", {}, k), el("dd", {}, String(v)));
    }
    let body = t.body || "";
    try { if (body) body = JSON.stringify(JSON.parse(body), null, 2); } catch (e) { /* shown as it is */ }
    $("#message-body").textContent = body || "(no body)";
    $("#message-detail").hidden = false;
  }

  function adviceActions(a, after) {
    const box = el("div", { class: "actions" });
    if (!isOperator()) return box;
    const leased = a.leaseUntil && new Date(a.leaseUntil) > new Date();
    const add = (label, kind) => {
      const b = el("button", { type: "button", class: "small act-" + kind, "data-advice": a.sender + "/" + a.id }, label);
      b.addEventListener("click", () => adviceAction(kind, a, after));
      box.append(b);
    };
    if (a.state === "PENDING" && !leased) add("Retry now", "retry");
    if (a.state === "DEAD") add("Replay", "replay");
    if ((a.state === "PENDING" && !leased) || a.state === "DEAD") add("Mark final…", "final");
    return box;
  }

  function renderAdvices(advices, attempts) {
    const body = $("#advices tbody");
    const reload = () => openPayment(decodeURIComponent(location.hash.slice("#/payment/".length)));
    for (const a of advices) {
      body.append(el("tr", { class: "advice", "data-advice": a.sender + "/" + a.id },
        el("td", { class: "mono" }, a.sender + "/" + a.id),
        el("td", {}, a.kind),
        el("td", {}, badge(a.state)),
        el("td", {}, a.state === "DONE" ? badge(a.outcome) : ""),
        el("td", {}, String(a.attempts)),
        el("td", { class: "mono" }, fmtTime(a.queuedAt)),
        el("td", { class: "mono" }, a.state === "PENDING" ? fmtTime(a.nextAt) : ""),
        el("td", {}, (a.lastCode ? a.lastCode + " " : "") + (a.lastError || "")),
        el("td", {}, a.note || (a.mergedInto ? "merged into " + a.mergedInto : "")),
        el("td", {}, adviceActions(a, reload))));
    }
    if (!advices.length) body.append(el("tr", {}, el("td", { colSpan: 10, class: "hint" }, "No confirmation or reversal.")));
    const ab = $("#attempts tbody");
    for (const t of attempts) {
      ab.append(el("tr", { class: "attempt" },
        el("td", { class: "mono" }, t.adviceKey),
        el("td", {}, String(t.n)),
        el("td", { class: "mono" }, fmtTime(t.at)),
        el("td", {}, t.code || "no answer"),
        el("td", {}, badge(t.outcome)),
        el("td", {}, Math.round(t.latencyMs) + " ms"),
        el("td", {}, t.note || "")));
    }
    if (!attempts.length) ab.append(el("tr", {}, el("td", { colSpan: 7, class: "hint" }, "Nothing was sent to the partner yet.")));
  }

  // --- operator actions --------------------------------------------------

  const actionHelp = {
    retry: "Send this advice now instead of waiting for its backoff to end.",
    replay: "Queue this dead letter again: sent now, with the same id, and given a fresh give-up period.",
    final: "End this advice with the outcome the partner gave you by other means. It is not sent again, and the payment moves to the matching final state.",
    pause: "Stop sending this partner's confirmations and reversals, on every replica. They stay queued until you resume.",
    resume: "Send this partner's queued advices again, starting now.",
    retryAll: "Send every queued retry of this partner now instead of waiting for each backoff.",
  };

  function ask(title, kind) {
    return new Promise((resolve) => {
      const d = $("#action-dialog");
      $("#action-title").textContent = title;
      $("#action-help").textContent = actionHelp[kind] || "";
      $("#action-outcome-label").hidden = kind !== "final";
      $("#action-reason").value = "";
      showError("#action-error", null);
      const done = (v) => { d.close(); resolve(v); };
      $("#action-form").onsubmit = (ev) => {
        ev.preventDefault();
        const reason = $("#action-reason").value.trim();
        if (!reason) { showError("#action-error", new Error("A reason is required: it goes in the audit trail.")); return; }
        done({ reason, outcome: $("#action-outcome").value });
      };
      $("#action-cancel").onclick = () => done(null);
      d.showModal();
      $("#action-reason").focus();
    });
  }

  async function adviceAction(kind, a, after) {
    const key = a.sender + "/" + a.id;
    const answer = await ask({ retry: "Retry advice ", replay: "Replay advice ", final: "Mark advice final: " }[kind] + key, kind);
    if (!answer) return;
    const body = { reason: answer.reason };
    if (kind === "final") body.outcome = answer.outcome;
    try {
      await api("POST", "/support/v1/advices/" + encodeURIComponent(a.sender) + "/" + encodeURIComponent(a.id) + "/" + kind, body);
      toast("Done: " + kind + " " + key);
    } catch (err) {
      toast("Refused: " + err.message);
    }
    after();
  }

  // --- store-and-forward -------------------------------------------------

  function histogram(attempts) {
    const buckets = [["0", 0, 0], ["1", 1, 1], ["2", 2, 2], ["3-5", 3, 5], ["6-10", 6, 10], ["11-20", 11, 20], ["21+", 21, Infinity]];
    const counts = buckets.map(([, lo, hi]) => Object.entries(attempts || {}).reduce((n, [k, v]) => (Number(k) >= lo && Number(k) <= hi ? n + v : n), 0));
    const max = Math.max(1, ...counts);
    const bars = el("div", { class: "hist" });
    const labels = el("div", { class: "hist-labels" });
    buckets.forEach(([label], i) => {
      const bar = el("span", { title: counts[i] + " advice(s) with " + label + " attempt(s)" });
      bar.style.height = Math.round((counts[i] / max) * 26 + 1) + "px";
      bars.append(bar);
      labels.append(el("span", {}, label));
    });
    return el("div", {}, bars, labels);
  }

  async function loadSAF() {
    showError("#saf-error", null);
    let data;
    try {
      data = await api("GET", "/support/v1/saf");
    } catch (err) {
      showError("#saf-error", err);
      return;
    }
    const body = $("#saf tbody");
    body.textContent = "";
    for (const q of data.partners) {
      const state = q.paused ? el("span", {}, badge("paused"), " by " + (q.control.by || "?") + ": " + (q.control.reason || "")) : badge("running");
      const actions = el("div", { class: "actions" });
      if (isOperator()) {
        const add = (label, kind, cls) => {
          const b = el("button", { type: "button", class: "small " + (cls || "") + " saf-" + kind, "data-partner": q.destination }, label);
          b.addEventListener("click", (ev) => { ev.stopPropagation(); partnerAction(kind, q.destination); });
          actions.append(b);
        };
        if (q.paused) add("Resume", "resume"); else add("Pause", "pause", "danger");
        if (!q.paused) add("Retry all now", "retry", "secondary");
      }
      const tr = el("tr", { class: "queue" + (q.destination === currentPartner ? " selected" : ""), "data-partner": q.destination },
        el("td", {}, q.destination + (q.name ? " (" + q.name + ")" : "")),
        el("td", {}, state),
        el("td", { class: "pending" }, String(q.pending)),
        el("td", {}, q.pending ? fmtAge(q.oldestQueuedAt) : ""),
        el("td", { class: "mono" }, q.pending ? fmtTime(q.nextAt) : ""),
        el("td", {}, String(q.held)),
        el("td", { class: "dead" }, String(q.dead)),
        el("td", {}, String(q.sending)),
        el("td", {}, histogram(q.attempts)),
        el("td", {}, actions));
      tr.addEventListener("click", () => openPartner(q.destination, currentState));
      body.append(tr);
    }
    if (currentPartner) openPartner(currentPartner, currentState);
  }

  // --- rails' records ----------------------------------------------------

  // loadRails lists, for every partner whose rail shows records, a tab per
  // kind; a tab lists that kind's records, newest first.
  async function loadRails() {
    showError("#rails-error", null);
    const tabs = $("#rail-kinds");
    tabs.textContent = "";
    $("#rail-records tbody").textContent = "";
    $("#rail-more").hidden = true;
    let queues;
    try {
      queues = await api("GET", "/support/v1/saf");
    } catch (err) {
      showError("#rails-error", err);
      return;
    }
    for (const q of queues.partners) {
      let kinds;
      try {
        kinds = await api("GET", "/support/v1/rails/" + encodeURIComponent(q.destination));
      } catch (err) {
        if (err.status === 404) continue; // this rail shows no records
        showError("#rails-error", err);
        return;
      }
      for (const kind of kinds.kinds) {
        const b = el("button", { type: "button", class: "rail-kind", "data-partner": q.destination, "data-kind": kind }, q.destination + ": " + kind);
        b.addEventListener("click", () => {
          for (const x of tabs.querySelectorAll("button")) x.classList.toggle("active", x === b);
          $("#rail-records tbody").textContent = "";
          loadRailRecords(q.destination, kind, "");
        });
        tabs.append(b);
      }
    }
    if (!tabs.children.length) tabs.append(el("p", { class: "hint" }, "No rail of this switch shows records."));
  }

  async function loadRailRecords(partner, kind, before) {
    showError("#rails-error", null);
    let data;
    try {
      data = await api("GET", "/support/v1/rails/" + encodeURIComponent(partner) + "/records/" + encodeURIComponent(kind) +
        (before ? "?before=" + encodeURIComponent(before) : ""));
    } catch (err) {
      showError("#rails-error", err);
      return;
    }
    const body = $("#rail-records tbody");
    for (const r of data.records) {
      body.append(el("tr", { class: "rail-record", "data-key": r.key },
        el("td", { class: "mono" }, r.key),
        el("td", { class: "mono" }, r.dueAt ? fmtTime(r.dueAt) : ""),
        el("td", {}, el("pre", { class: "mono" }, JSON.stringify(r.view, null, 2)))));
    }
    const more = $("#rail-more");
    more.hidden = !data.next;
    more.onclick = () => loadRailRecords(partner, kind, data.next);
  }

  async function partnerAction(kind, partner) {
    const answer = await ask({ pause: "Pause the queue of ", resume: "Resume the queue of ", retry: "Retry every queued advice of " }[kind] + partner,
      kind === "retry" ? "retryAll" : kind);
    if (!answer) return;
    try {
      await api("POST", "/support/v1/saf/" + encodeURIComponent(partner) + "/" + kind, { reason: answer.reason });
      toast("Done: " + kind + " " + partner);
    } catch (err) {
      toast("Refused: " + err.message);
    }
    currentPartner = partner;
    loadSAF();
  }

  async function openPartner(partner, state) {
    currentPartner = partner;
    currentState = state;
    $$("#saf tr.queue").forEach((tr) => tr.classList.toggle("selected", tr.getAttribute("data-partner") === partner));
    $$(".state-tab").forEach((b) => b.classList.toggle("active", b.getAttribute("data-state") === state));
    $("#partner-detail").hidden = false;
    $("#partner-title").textContent = "Partner " + partner;
    let advices, audit;
    try {
      [advices, audit] = await Promise.all([
        api("GET", "/support/v1/saf/" + encodeURIComponent(partner) + "/advices?state=" + state),
        api("GET", "/support/v1/saf/" + encodeURIComponent(partner) + "/audit"),
      ]);
    } catch (err) {
      showError("#saf-error", err);
      return;
    }
    const body = $("#partner-advices tbody");
    body.textContent = "";
    for (const a of advices.advices) {
      const link = el("a", { href: "#/payment/" + encodeURIComponent(a.paymentKey) }, a.tranId || a.paymentKey);
      body.append(el("tr", { class: "advice", "data-advice": a.sender + "/" + a.id },
        el("td", { class: "mono" }, a.sender + "/" + a.id),
        el("td", {}, a.kind),
        el("td", { class: "mono" }, link),
        el("td", {}, badge(a.state)),
        el("td", {}, String(a.attempts)),
        el("td", { class: "mono" }, fmtTime(a.queuedAt)),
        el("td", {}, (a.lastCode ? a.lastCode + " " : "") + (a.lastError || "")),
        el("td", {}, a.note || ""),
        el("td", {}, adviceActions(a, loadSAF))));
    }
    if (!advices.advices.length) body.append(el("tr", {}, el("td", { colSpan: 9, class: "hint" }, "None.")));
    const ab = $("#audit tbody");
    ab.textContent = "";
    for (const t of audit.audit.slice().reverse()) {
      ab.append(el("tr", { class: "audit-entry" },
        el("td", { class: "mono" }, fmtTime(t.at)),
        el("td", {}, t.peer),
        el("td", {}, t.operation),
        el("td", {}, t.note || "")));
    }
    if (!audit.audit.length) ab.append(el("tr", {}, el("td", { colSpan: 4, class: "hint" }, "No operator has acted on this queue.")));
  }

  $$(".state-tab").forEach((b) => b.addEventListener("click", () => openPartner(currentPartner, b.getAttribute("data-state"))));

  show("login-view");
})();
