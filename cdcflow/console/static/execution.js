"use strict";
// An execution: its graph coloured by how each state went, the event history, a state's input and output on click.
(() => {
  const { pipeline_id: pipelineId, execution_arn: arn } = Console.context;
  const query = "?pipeline=" + encodeURIComponent(pipelineId) + "&arn=" + encodeURIComponent(arn);
  const follow = document.getElementById("follow");
  let graph = null, view = null, selected = null, revealed = null, shownEvents = 0;

  function fact(name, value) {
    return [Console.el("dt", {}, name), Console.el("dd", {}, value === null || value === undefined ? "—" : value)];
  }

  function json(value) {
    return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
  }

  function showState(name) {
    selected = name;
    graph.select(name);
    const state = view.states[name] || {};
    document.getElementById("details-title").textContent = name;
    document.getElementById("details-hint").hidden = true;
    document.getElementById("details-facts").replaceChildren(...[
      fact("Type", state.type), fact("Status", (state.status || "").replace("_", " ")),
      fact("Visits", state.visits), fact("Attempts", state.attempts),
      fact("Entered", Console.time(state.entered_at)), fact("Exited", Console.time(state.exited_at)),
    ].flat());
    const error = document.getElementById("details-error");
    error.hidden = !state.error;
    if (state.error) {
      error.replaceChildren(Console.el("strong", {}, state.error), Console.el("div", {}, state.cause || ""));
    }
    document.getElementById("details-input").textContent = json(state.input);
    document.getElementById("details-output").textContent = json(state.output);
  }

  function renderEvents(events) {
    const body = document.querySelector("#events tbody");
    if (events.length < shownEvents) { body.replaceChildren(); shownEvents = 0; }
    const rows = events.slice(shownEvents).map((event) => {
      const failed = /Failed|TimedOut|Aborted/.test(event.type);
      const details = Object.keys(event.details).length ? JSON.stringify(event.details) : "";
      return Console.el("tr", { class: failed ? "failed-event" : null, "data-event": event.id },
        Console.el("td", { class: "num" }, event.id),
        Console.el("td", {}, event.type),
        Console.el("td", {}, event.state ? Console.el("a", { href: "#", onclick: (click) => {
          click.preventDefault(); showState(event.state); } }, event.state) : "—"),
        Console.el("td", {}, Console.time(event.timestamp)),
        Console.el("td", { class: "details-cell" }, details));
    });
    body.append(...rows);
    shownEvents = events.length;
  }

  function focusState(next) {
    const states = Object.entries(next.states);
    const pick = (status) => states.filter(([, state]) => state.status === status)
      .sort((a, b) => String(b[1].entered_at).localeCompare(String(a[1].entered_at)))[0];
    // The state in progress, else the one that failed, else the last one the execution entered.
    const found = pick("in_progress") || pick("failed") || pick("caught") || pick("succeeded");
    return found ? found[0] : null;
  }

  async function load() {
    const answer = await Console.data("/execution" + query);
    if (answer.status !== 200) { Console.notice(Console.refusal(answer)); return; }
    Console.notice(null);
    view = answer.body;
    const execution = view.execution;
    document.getElementById("execution-name").textContent = execution.name || "execution";
    Console.badge(execution.status, "status");
    const error = document.getElementById("execution-error");
    error.hidden = !execution.error;
    if (execution.error) {
      error.replaceChildren(Console.el("strong", {}, execution.error), Console.el("div", {}, execution.cause || ""));
    }
    if (!graph) {
      graph = StateGraph.create(document.getElementById("graph"), view, showState);
    }
    graph.update(view);
    renderEvents(view.events);
    const focus = focusState(view);
    if (focus && focus !== revealed && follow.checked) { graph.reveal(focus); revealed = focus; }
    if (selected) showState(selected);
    else if (focus) showState(focus);
    if (execution.status !== "RUNNING") follow.checked = false;
  }

  let poller = null;
  function start() {
    poller = Console.poll(async () => { if (!view || follow.checked) await load(); }, 2000);
  }
  document.getElementById("zoom-in").addEventListener("click", () => graph && graph.zoom(1.25));
  document.getElementById("zoom-out").addEventListener("click", () => graph && graph.zoom(0.8));
  document.getElementById("zoom-fit").addEventListener("click", () => graph && graph.zoom("fit"));
  follow.addEventListener("change", () => { if (follow.checked && poller) poller.now(); });
  if (document.getElementById("profile").value) start();
})();
