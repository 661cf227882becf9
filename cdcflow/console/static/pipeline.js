"use strict";
// One pipeline: its summary, spec, executions and the teardown its team or an admin may start.
(() => {
  const pipelineId = Console.context.pipeline_id;
  const path = "/pipelines/" + encodeURIComponent(pipelineId);
  // The actions beyond pause, resume and teardown that the API routes (the server reads its routes).
  const offered = (Console.context.actions || "").split(",").filter(Boolean);
  let user = null, current = null;

  function fact(name, value) {
    return [Console.el("dt", {}, name), Console.el("dd", {}, value === null || value === undefined ? "—" : value)];
  }

  function render(pipeline) {
    current = pipeline;
    Console.badge(pipeline.status, "status");
    document.getElementById("facts").replaceChildren(...[
      fact("Owner", pipeline.owner),
      fact("Status", pipeline.status),
      fact("Current step", pipeline.current_step),
      fact("Requested by", pipeline.requested_by),
      fact("Created", Console.time(pipeline.created_at)),
      fact("Updated", Console.time(pipeline.updated_at)),
      fact("Spec fingerprint", Console.el("span", { class: "mono small" }, pipeline.spec_fingerprint)),
    ].flat());
    const error = document.getElementById("last-error");
    if (pipeline.last_error) {
      error.hidden = false;
      error.replaceChildren(Console.el("strong", {}, "Last error: " + pipeline.last_error.error),
        Console.el("div", {}, pipeline.last_error.cause));
    } else {
      error.hidden = true;
    }
    const links = [];
    if (pipeline.execution_arn) {
      links.push(Console.el("li", {}, Console.el("a", { href: Console.executionHref(pipelineId, pipeline.execution_arn),
        id: "provision-execution" }, "Provisioning execution"), " ",
        Console.el("span", { class: "muted mono small" }, pipeline.execution_arn.split(":").pop())));
    }
    if (pipeline.teardown_execution_arn) {
      links.push(Console.el("li", {}, Console.el("a", { href: Console.executionHref(pipelineId,
        pipeline.teardown_execution_arn), id: "teardown-execution" }, "Teardown execution"), " ",
        Console.el("span", { class: "muted mono small" }, pipeline.teardown_execution_arn.split(":").pop())));
    }
    if (pipeline.lifecycle_execution_arn) {
      const name = pipeline.lifecycle_execution_arn.split(":").pop();
      // arn:aws:states:<region>:<account>:execution:<state machine>:<name>
      const machine = (pipeline.lifecycle_execution_arn.split(":")[6] || "").replace(/Pipeline$/, "");
      links.push(Console.el("li", {}, Console.el("a", { href: Console.executionHref(pipelineId,
        pipeline.lifecycle_execution_arn), id: "lifecycle-held" }, (machine || "Lifecycle") + " execution"), " ",
        Console.el("span", { class: "muted mono small" }, name)));
    }
    document.getElementById("executions").replaceChildren(...links);
    renderConnectors(pipeline);
    renderSlot(pipeline);
    renderAlarms(pipeline.alarms, pipeline.alarms_error);
    renderHistory(pipeline.spec_history);
    document.getElementById("spec").textContent = JSON.stringify(pipeline.spec, null, 2);
    // The API decides; the button is offered to those it lets change a pipeline: the owning team's requesters, admins.
    const allowed = user && (user.roles.includes("admin") ||
                             (user.teams.includes(pipeline.owner) && user.roles.includes("requester")));
    const gone = pipeline.status === "DELETED" || pipeline.status === "DELETING";
    document.getElementById("teardown").hidden = !allowed || gone;
    document.getElementById("pause").hidden = !allowed || pipeline.status !== "ACTIVE";
    document.getElementById("resume").hidden = !allowed || pipeline.status !== "PAUSED";
    document.getElementById("no-actions").hidden = allowed || gone;
    document.getElementById("update").hidden = !allowed || !offered.includes("update") || pipeline.status !== "ACTIVE";
    document.getElementById("resync").hidden = !allowed || !offered.includes("resync") || pipeline.status !== "ACTIVE";
  }

  const STATE_CLASS = { RUNNING: "ACTIVE", PAUSED: "PAUSED", FAILED: "FAILED", UNASSIGNED: "PROVISIONING",
                        RESTARTING: "PROVISIONING", UNKNOWN: "", ABSENT: "" };

  function stateBadge(state) {
    return Console.el("span", { class: "badge " + (STATE_CLASS[state] || "") }, state || "—");
  }

  function renderConnectors(pipeline) {
    const rows = (pipeline.connectors || []).map((connector) => Console.el("tr", {
      "data-connector": connector.role, "data-state": connector.state },
      Console.el("td", { class: "mono small" }, connector.name), Console.el("td", {}, connector.role),
      Console.el("td", {}, stateBadge(connector.state)),
      Console.el("td", {}, connector.tasks.length ? connector.tasks.map((task) => Console.el("span", {
        class: "task", "data-task": task.id, "data-state": task.state }, "task " + task.id + " ",
        stateBadge(task.state))) : Console.el("span", { class: "muted" }, "none"))));
    document.querySelector("#connectors tbody").replaceChildren(...rows);
    document.getElementById("connectors").hidden = !rows.length;
    document.getElementById("connectors-note").textContent = pipeline.connectors_error
      || (rows.length ? "" : "none: the pipeline has no connectors in its status");
  }

  function renderSlot(pipeline) {
    const slot = pipeline.slot || {};
    document.getElementById("slot").replaceChildren(...[
      fact("Name", Console.el("span", { class: "mono small" }, slot.name)),
      fact("Lag", slot.lag_bytes === null || slot.lag_bytes === undefined
        ? "not measured yet (reconciliation measures it)" : Console.bytes(slot.lag_bytes)),
    ].flat());
  }

  // `alarms`, when the API gives them: a list of {alarm|name, state, reason}, or an object of them by name.
  function renderAlarms(alarms, error) {
    const section = document.getElementById("alarms-section");
    if (error && !alarms) {
      section.hidden = false;
      document.querySelector("#alarms tbody").replaceChildren(Console.el("tr", {}, Console.el("td",
        { colspan: 3, class: "muted" }, error)));
      return;
    }
    const list = Array.isArray(alarms) ? alarms : (alarms && typeof alarms === "object" ? (alarms.alarms ||
      Object.entries(alarms).map(([name, value]) => (typeof value === "object" ? { alarm: name, ...value }
        : { alarm: name, state: value }))) : null);
    section.hidden = !Array.isArray(list);
    if (!Array.isArray(list)) return;
    const rows = list.map((alarm) => Console.el("tr", { "data-alarm": alarm.alarm || alarm.name,
      "data-state": alarm.state },
      Console.el("td", {}, alarm.alarm || alarm.name), Console.el("td", {}, Console.el("span", {
        class: "badge " + (alarm.state === "ALARM" ? "FAILED" : alarm.state === "OK" ? "ACTIVE" : "") },
        alarm.state || "—")), Console.el("td", { class: "small" }, alarm.reason || "")));
    document.querySelector("#alarms tbody").replaceChildren(...(rows.length ? rows
      : [Console.el("tr", {}, Console.el("td", { colspan: 3, class: "muted" }, "no alarms"))]));
  }

  function renderHistory(history) {
    const section = document.getElementById("history-section");
    section.hidden = !Array.isArray(history) || !history.length;
    if (section.hidden) return;
    const items = [...history].reverse().map((item) => Console.el("li", {},
      Console.el("div", { class: "small" }, "replaced " + Console.time(item.at) + (item.by ? " by " +
        item.by.split("/").pop() : "")),
      Console.el("details", {}, Console.el("summary", { class: "small" }, "the spec it ran on"),
        Console.el("pre", { class: "json" }, JSON.stringify(item.spec, null, 2)))));
    document.getElementById("spec-history").replaceChildren(...items);
  }

  async function load() {
    if (!document.getElementById("profile").value) return;
    const answer = await Console.api("GET", path);
    if (answer.status !== 200) { Console.notice(Console.refusal(answer)); return; }
    Console.notice(null);
    render(answer.body);
  }

  const dialog = document.getElementById("confirm-teardown");
  document.getElementById("teardown").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "confirm") return;
    const keepTopics = dialog.querySelector("[name=keep_topics]").checked;
    const result = document.getElementById("action-result");
    result.className = "";
    result.textContent = "Starting the teardown…";
    const answer = await Console.api("DELETE", path + "?keep_topics=" + keepTopics);
    if (answer.status === 202) {
      result.className = "answered";
      result.replaceChildren("Teardown started: ", Console.el("a", {
        href: Console.executionHref(pipelineId, answer.body.execution_arn) }, "its execution"));
    } else {
      result.className = "refused";
      result.textContent = "Refused. " + Console.refusal(answer);
    }
    poller.now();
  });

  // Pause and resume: each confirmed, each answered with the execution it started (or the API's refusal).
  const lifecycle = document.getElementById("confirm-lifecycle");
  const WHAT = {
    pause: "Its source and sink connectors stop; the replication slot keeps the changes until it resumes.",
    resume: "Its connectors start again and catch up from the slot; it is ACTIVE once a fresh canary arrives.",
  };
  let action = null;
  for (const name of ["pause", "resume"]) {
    document.getElementById(name).addEventListener("click", () => {
      action = name;
      document.getElementById("lifecycle-verb").textContent = name === "pause" ? "Pause" : "Resume";
      document.getElementById("lifecycle-what").textContent = WHAT[name];
      lifecycle.showModal();
    });
  }
  lifecycle.addEventListener("close", async () => {
    if (lifecycle.returnValue !== "confirm" || !action) return;
    const result = document.getElementById("action-result");
    result.className = "";
    result.textContent = (action === "pause" ? "Pausing" : "Resuming") + "…";
    const answer = await Console.api("POST", path + "/" + action);
    if (answer.status === 202) {
      result.className = "answered";
      result.replaceChildren((action === "pause" ? "Pause" : "Resume") + " started: ", Console.el("a", {
        href: Console.executionHref(pipelineId, answer.body.execution_arn), id: "lifecycle-execution" },
        "its execution"));
    } else {
      result.className = "refused";
      result.textContent = "Refused. " + Console.refusal(answer);
    }
    poller.now();
  });

  // Update (PATCH, merged over the spec) and resync: offered only where the API routes them.
  function started(answer, verb, id) {
    const result = document.getElementById("action-result");
    if (answer.status === 202) {
      result.className = "answered";
      result.replaceChildren(verb + " started: ", Console.el("a", {
        href: Console.executionHref(pipelineId, answer.body.execution_arn), id }, "its execution"));
    } else if (answer.status === 200) {
      result.className = "answered";
      result.textContent = verb + ": nothing to change.";
    } else {
      result.className = "refused";
      const problems = (answer.body && answer.body.problems) || [];
      // With the API's problems listed, each by its field, the status line needs no repeat of them.
      result.replaceChildren("Refused. " + (problems.length ? "HTTP " + answer.status + ":" : Console.refusal(answer)),
        ...problems.map((problem) =>
        Console.el("span", { class: "problem", "data-field": problem.field }, problem.field + ": " + problem.message)));
    }
    poller.now();
  }

  const update = document.getElementById("confirm-update");
  document.getElementById("update").addEventListener("click", () => {
    const { pipeline_id: _, owner: __, ...changeable } = (current && current.spec) || {};
    document.getElementById("update-spec").value = JSON.stringify(changeable, null, 2);
    update.showModal();
  });
  update.addEventListener("close", async () => {
    if (update.returnValue !== "confirm") return;
    let patch;
    try { patch = JSON.parse(document.getElementById("update-spec").value); } catch (error) {
      const result = document.getElementById("action-result");
      result.className = "refused";
      result.textContent = "The update is not JSON: " + error.message;
      return;
    }
    const keep = update.querySelector("[name=keep_topics]").checked;
    started(await Console.api("PATCH", path + (keep ? "?keep_topics=true" : ""), patch), "Update", "update-execution");
  });

  const resync = document.getElementById("confirm-resync");
  document.getElementById("resync").addEventListener("click", () => {
    const tables = ((current && current.spec && current.spec.source) || {}).tables || [];
    // Each table: whether to resync it, and optionally a WHERE condition that limits it to the matching rows.
    document.getElementById("resync-tables").replaceChildren(...tables.map((table) => Console.el("div",
      { class: "resync-table" },
      Console.el("label", { class: "block" },
        Console.el("input", { type: "checkbox", name: "table", value: table, checked: true }),
        " ", Console.el("span", { class: "mono" }, table)),
      Console.el("input", { type: "text", name: "where", "data-table": table, class: "mono",
        placeholder: "WHERE … (optional, e.g. created_at > now() - interval '1 day')",
        "aria-label": "condition for " + table }))));
    resync.showModal();
  });
  resync.addEventListener("close", async () => {
    if (resync.returnValue !== "confirm") return;
    const tables = [...resync.querySelectorAll("[name=table]:checked")].map((box) => box.value);
    const where = {};
    for (const input of resync.querySelectorAll("[name=where]")) {
      if (tables.includes(input.dataset.table) && input.value.trim()) where[input.dataset.table] = input.value.trim();
    }
    started(await Console.api("POST", path + "/resync", { tables, where }), "Resync", "resync-execution");
  });

  let poller;
  Console.whoami().then((found) => { user = found; poller = Console.poll(load, 2000); });
})();
