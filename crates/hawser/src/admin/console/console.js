// Hawser's web console: reads the admin API (/api/...) and changes through
// it. Every value reaches the page as text (textContent, attributes set one
// by one), never as markup, so a message body or a queue name with HTML in
// it is shown, not run. The page's Content-Security-Policy allows scripts
// from this file only.
"use strict";

const POLL_MS = 2000;
// Depth samples kept per destination for its sparkline (two minutes).
const SPARK_POINTS = 60;

const state = {
  auth: sessionStorage.getItem("hawser-auth"),
  // Bumped at each login: answers to an earlier one are dropped.
  generation: 0,
  token: null,
  access: null,
  history: new Map(),
  timer: null,
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function say(text, error) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function api(method, path, body) {
  const generation = state.generation;
  const headers = { "X-Requested-With": "hawser-console" };
  if (state.auth) headers["Authorization"] = "Basic " + state.auth;
  if (method !== "GET") headers["X-Hawser-Token"] = state.token || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  if (r.status === 401) {
    const why = await r.text();
    if (generation === state.generation) showLogin("Log in again: " + why);
    throw new Error("not logged in");
  }
  if (!r.ok) throw new Error(method + " " + path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function showLogin(why) {
  clearInterval(state.timer);
  document.getElementById("login").hidden = false;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("view").replaceChildren();
  say(why || "", Boolean(why));
}

async function start() {
  const generation = ++state.generation;
  try {
    const s = await api("GET", "/api/session");
    if (generation !== state.generation) return;
    state.token = s.token;
    state.access = s.access;
    document.getElementById("who").textContent = s.user + " (" + s.access + ")";
    document.getElementById("login").hidden = true;
    document.getElementById("nav").hidden = false;
    document.getElementById("logout").hidden = false;
    say("");
    route();
  } catch (e) {
    if (generation === state.generation && e.message !== "not logged in") showLogin(e.message);
  }
}

function isAdmin() {
  return state.access === "admin";
}

// Runs a change, says what it did, and shows the view again.
async function act(what, method, path, body) {
  try {
    const r = await api(method, path, body);
    const n = r && typeof r.messages === "number" ? ": " + r.messages + " messages" : "";
    say(what + " done" + n);
  } catch (e) {
    say(what + " refused: " + e.message, true);
  }
  route();
}

function button(label, onclick, danger) {
  const b = el("button", { type: "button", text: label, onclick });
  if (danger) b.className = "danger";
  if (!isAdmin()) {
    b.disabled = true;
    b.title = "needs the admin role";
  }
  return b;
}

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const max = Math.max(1, ...points);
  const step = 120 / Math.max(1, SPARK_POINTS - 1);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute(
    "points",
    // The newest at the right edge.
    points
      .map((v, i) => (120 - (points.length - 1 - i) * step).toFixed(1) + "," + (23 - (v / max) * 22).toFixed(1))
      .join(" ")
  );
  svg.append(line);
  return svg;
}

function table(headings, rows, id) {
  const head = el("tr", {}, ...headings.map((h) => el("th", { text: h })));
  const t = el("table", id ? { id } : {}, el("thead", {}, head), el("tbody", {}, ...rows));
  return t;
}

function num(v) {
  return el("td", { class: "num", text: String(v) });
}

function text(v) {
  return el("td", { text: v === null || v === undefined ? "" : String(v) });
}

function queueName(d) {
  return d.startsWith("queue://") ? d.slice("queue://".length) : null;
}

function path(kind, name) {
  return "/api/" + kind + "/" + encodeURIComponent(name);
}

async function destinations(view) {
  const rows = await api("GET", "/api/destinations");
  const out = [];
  for (const d of rows) {
    const h = state.history.get(d.destination) || [];
    h.push(d.depth);
    while (h.length > SPARK_POINTS) h.shift();
    state.history.set(d.destination, h);
    const q = queueName(d.destination);
    const actions = el("td", {});
    if (q !== null) {
      actions.append(
        el("a", { href: "#browse/" + encodeURIComponent(q), text: "browse" }),
        button("purge", () => {
          if (confirm("Purge every message of " + q + "?")) act("purge " + q, "POST", path("queues", q) + "/purge");
        }, true),
        button("delete", () => {
          if (confirm("Delete " + q + " and its messages?")) act("delete " + q, "DELETE", path("queues", q));
        }, true)
      );
      if (/DLQ/.test(q)) {
        actions.append(button("retry", () => act("retry " + q, "POST", path("queues", q) + "/retry")));
      }
    }
    out.push(
      el("tr", { "data-destination": d.destination },
        text(d.destination),
        num(d.depth),
        el("td", {}, sparkline(h)),
        num(d.consumers),
        num(d.producers),
        num(d.enqueued),
        num(d.dequeued),
        num(d.expired),
        num(d.dead_lettered),
        actions)
    );
  }
  const create = el("form", { id: "create" },
    el("label", {}, "New queue ", el("input", { id: "create-name", required: "" })),
    el("button", { type: "submit", text: "create" }));
  create.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = document.getElementById("create-name").value;
    act("create " + name, "PUT", path("queues", name));
  });
  if (!isAdmin()) create.hidden = true;
  view.replaceChildren(
    el("h2", { text: "Destinations" }),
    table(["Destination", "Depth", "Depth, last 2 min", "Consumers", "Producers", "Enqueued", "Dequeued", "Expired", "Dead-lettered", ""], out, "destinations"),
    create
  );
}

async function browse(view, q) {
  const rows = await api("GET", path("queues", q) + "/messages?max=200");
  const out = rows.map((m) => {
    const to = el("input", { placeholder: "to queue", class: "move-to", size: "12" });
    const move = (how) => () => {
      if (!to.value) return say("name the queue to " + how + " to", true);
      act(how + " message " + m.id, "POST", path("queues", q) + "/messages/" + m.id + "/" + how, { to: to.value });
    };
    const props = Object.entries(m.properties).map(([k, v]) => k + "=" + v).join("\n");
    return el("tr", { "data-id": String(m.id) },
      num(m.id),
      text(m.message_id),
      num(m.priority),
      text(m.persistent ? "persistent" : "non-persistent"),
      text(new Date(m.timestamp_ms).toISOString()),
      num(m.redeliveries),
      el("td", { class: "body", text: props }),
      el("td", { class: "body", text: m.body_truncated ? m.body + " … (" + m.body_bytes + " bytes in all)" : m.body }),
      el("td", {}, to, button("move", move("move")), button("copy", move("copy"))));
  });
  view.replaceChildren(
    el("h2", { text: "Messages of " + q }),
    el("p", { text: "The first " + rows.length + " waiting, in the order they will be delivered." }),
    table(["Id", "JMS id", "Priority", "Delivery", "Sent", "Redelivered", "Properties", "Body", ""], out, "messages")
  );
}

async function connections(view) {
  const rows = await api("GET", "/api/connections");
  const out = rows.map((c) =>
    el("tr", { "data-connection": String(c.id) },
      num(c.id), text(c.protocol), text(c.remote), text(c.client_id), text(c.user),
      num(c.subscriptions), num(c.transactions),
      el("td", {}, button("close", () => act("close connection " + c.id, "DELETE", "/api/connections/" + c.id), true)))
  );
  view.replaceChildren(
    el("h2", { text: "Connections" }),
    table(["Id", "Protocol", "From", "Client id", "User", "Consumers", "Transactions", ""], out, "connections")
  );
}

async function subscriptions(view) {
  const rows = await api("GET", "/api/subscriptions");
  const out = rows.map((s) => {
    const actions = el("td", {});
    if (s.connection === null && s.durable_name) {
      actions.append(button("delete", () =>
        act("delete subscription " + s.durable_name, "DELETE",
          "/api/subscriptions/" + encodeURIComponent(s.client_id) + "/" + encodeURIComponent(s.durable_name)), true));
    }
    return el("tr", {},
      text(s.destination), text(s.client_id), text(s.durable_name), text(s.connection === null ? "offline" : s.connection),
      text(s.selector), num(s.pending), num(s.inflight), num(s.dispatched), actions);
  });
  view.replaceChildren(
    el("h2", { text: "Subscriptions" }),
    table(["Destination", "Client id", "Durable name", "Connection", "Selector", "Pending", "In flight", "Delivered", ""], out, "subscriptions")
  );
}

function brokerRow(name, s, error) {
  if (!s) return el("tr", {}, text(name), el("td", { colspan: "5", text: error || "" }));
  const role = el("td", { class: s.role, text: s.role });
  const links = s.network.map((l) => l.peer + ": " + (l.up ? "up" : "down") + ", " + l.forwarded + " forwarded").join("; ");
  return el("tr", {}, text(name), role, num(s.epoch), text(new Date(s.since_ms).toISOString()),
    text(s.failed ? "failed: " + s.failed : "ok"), text(links));
}

async function cluster(view) {
  const c = await api("GET", "/api/cluster");
  const brokers = [brokerRow("this broker" + (c.this.node ? " (" + c.this.node + ")" : ""), c.this)];
  for (const p of c.peers) brokers.push(brokerRow(p.admin, p.status, p.error));
  const events = el("ol", { class: "timeline", id: "timeline" },
    ...c.events.map((e) => el("li", { text: new Date(e.at_ms).toISOString() + "  " + e.role + "  epoch " + e.epoch })));
  view.replaceChildren(
    el("h2", { text: "Cluster" }),
    table(["Broker", "Role", "Epoch", "Since", "Store", "Network links"], brokers, "brokers"),
    el("h3", { text: "This broker's roles over time" }),
    events
  );
}

async function route() {
  clearInterval(state.timer);
  const view = document.getElementById("view");
  const hash = location.hash.slice(1) || "destinations";
  for (const a of document.querySelectorAll("#nav a")) {
    a.className = a.getAttribute("href") === "#" + hash.split("/")[0] ? "current" : "";
  }
  const show = async () => {
    try {
      if (hash.startsWith("browse/")) await browse(view, decodeURIComponent(hash.slice(7)));
      else if (hash === "connections") await connections(view);
      else if (hash === "subscriptions") await subscriptions(view);
      else if (hash === "cluster") await cluster(view);
      else await destinations(view);
    } catch (e) {
      if (e.message !== "not logged in") say(e.message, true);
    }
  };
  await show();
  // Lists refresh themselves; a browse page waits for the operator.
  if (!hash.startsWith("browse/")) state.timer = setInterval(show, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = document.getElementById("login-user").value;
    const password = document.getElementById("login-password").value;
    // Base64 of the UTF-8 bytes (btoa alone takes Latin-1 only).
    const bytes = new TextEncoder().encode(user + ":" + password);
    state.auth = user ? btoa(String.fromCharCode(...bytes)) : null;
    if (state.auth) sessionStorage.setItem("hawser-auth", state.auth);
    else sessionStorage.removeItem("hawser-auth");
    start();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem("hawser-auth");
    state.auth = null;
    showLogin("Logged out.");
  });
  window.addEventListener("hashchange", route);
  // Without stored credentials, the form first: asking without them would
  // cost a refused attempt (and its delay) on a broker with users.
  if (state.auth) start();
  else showLogin();
});
