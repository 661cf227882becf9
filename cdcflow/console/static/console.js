"use strict";
// What every console page shares: calls through the console's signing proxy, the user menu, polling, formatting.
const Console = (() => {
  const headers = { "X-Cdcflow-Console": "1" };
  const context = JSON.parse(document.body.dataset.context || "{}");

  async function call(method, url, body) {
    const init = { method, headers: { ...headers }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      return { status: 0, body: { message: "the console server does not answer (" + error.message + ")" } };
    }
    let document_ = {};
    try { document_ = await response.json(); } catch (error) { document_ = { message: response.statusText }; }
    return { status: response.status, body: document_ };
  }

  const api = (method, path, body) => call(method, "/console/api" + path, body);
  const data = (path) => call("GET", "/console/data" + path);

  function notice(message, kind) {
    const box = document.getElementById("notice");
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.className = kind || "";
    box.textContent = message;
  }

  // A failed answer as one line: the API's message, and the field it names.
  function refusal(answer) {
    const body = answer.body || {};
    const field = body.field ? " (" + body.field + ")" : "";
    return (answer.status ? "HTTP " + answer.status + ": " : "") + (body.message || "no message") + field;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bytes(value) {
    if (value === null || value === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let index = 0, amount = value;
    while (amount >= 1024 && index < units.length - 1) { amount /= 1024; index += 1; }
    return (index ? amount.toFixed(1) : amount) + " " + units[index];
  }

  function time(value) {
    if (!value) return "—";
    const date = new Date(value);
    return isNaN(date) ? String(value) : date.toLocaleString(undefined, { hour12: false });
  }

  function duration(seconds) {
    if (seconds <= 0) return "expired";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (h ? "" : s + " s");
  }

  // Calls `refresh` now and every `interval` ms, never two at once, paused while the tab is hidden.
  function poll(refresh, interval) {
    let timer = null, stopped = false;
    async function tick() {
      if (stopped) return;
      if (!document.hidden) {
        try { await refresh(); } catch (error) { notice("refresh failed: " + error.message); }
      }
      if (!stopped) timer = setTimeout(tick, interval);
    }
    tick();
    return { stop() { stopped = true; clearTimeout(timer); }, now() { clearTimeout(timer); tick(); } };
  }

  function stamp(id) {
    const node = document.getElementById(id);
    if (node) node.textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
  }

  function badge(status, id) {
    const node = id ? document.getElementById(id) : el("span");
    node.className = "badge " + (status || "");
    node.textContent = status || "—";
    return node;
  }

  const executionHref = (pipelineId, arn) =>
    "/console/executions?pipeline=" + encodeURIComponent(pipelineId) + "&arn=" + encodeURIComponent(arn);

  let session = null;
  async function whoami() {
    if (!session) session = (await call("GET", "/console/session")).body;
    const profile = session.profile;
    const user = (session.users || []).find((candidate) => candidate.profile === profile);
    return user || null;
  }

  document.getElementById("profile").addEventListener("change", async (event) => {
    const answer = await call("POST", "/console/session", { profile: event.target.value });
    if (answer.status !== 200) notice(refusal(answer)); else location.reload();
  });
  if (!document.getElementById("profile").value) {
    notice("Choose which local user you are (top right): every call the console makes is signed as that user.", "info");
  }

  return { api, data, call, el, bytes, time, duration, poll, notice, refusal, stamp, badge, context, executionHref, whoami };
})();
