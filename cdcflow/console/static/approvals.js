"use strict";
// Pending approvals: requester, instance, time left; approve or reject with a comment, as the chosen user.
(() => {
  const body = document.querySelector("#approvals tbody");
  const rows = new Map();
  let skew = 0;  // server clock minus this browser's, so the time left is the server's

  function timeLeft(deadline) {
    if (!deadline) return "—";
    return Console.duration((new Date(deadline).getTime() - (Date.now() + skew)) / 1000);
  }

  async function decide(approval, approved, row) {
    const comment = row.querySelector("input[name=comment]").value.trim();
    const result = row.querySelector(".result");
    row.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    result.className = "result";
    result.textContent = approved ? "Approving…" : "Rejecting…";
    const decision = { approved };
    if (comment) decision.comment = comment;
    const answer = await Console.api("POST", "/pipelines/" + encodeURIComponent(approval.pipeline_id) + "/approval",
                                     decision);
    if (answer.status === 202) {
      result.className = "result answered";
      result.textContent = approved ? "Approved: the reboot goes ahead." : "Rejected: the provisioning rolls back.";
    } else {
      result.className = "result refused";
      result.textContent = "Refused. " + Console.refusal(answer);
      row.querySelectorAll("button").forEach((button) => { button.disabled = false; });
    }
  }

  function row(approval) {
    const tr = Console.el("tr", { "data-pipeline": approval.pipeline_id });
    const href = "/console/pipelines/" + encodeURIComponent(approval.pipeline_id);
    tr.append(
      Console.el("td", {}, Console.el("a", { href }, approval.pipeline_id), Console.el("div", { class: "small" },
        Console.el("a", { href: Console.executionHref(approval.pipeline_id, approval.execution_arn) }, "execution"))),
      Console.el("td", {}, approval.owner),
      Console.el("td", { title: approval.requested_by || "" },
        approval.requested_by ? approval.requested_by.split("/").pop() : "—"),
      Console.el("td", {}, approval.rds_instance_id || "—",
        Console.el("div", { class: "muted small" }, "connection " + (approval.source_connection || "—"))),
      Console.el("td", { class: "nowrap" }, Console.time(approval.waiting_since)),
      Console.el("td", { class: "time-left nowrap" }, timeLeft(approval.deadline)),
      Console.el("td", { class: "decision-cell" }, Console.el("div", { class: "decision" },
        Console.el("input", { name: "comment", placeholder: "comment", "aria-label": "Comment" }),
        Console.el("button", { type: "button", class: "primary", name: "approve",
                               onclick: () => decide(approval, true, tr) }, "Approve"),
        Console.el("button", { type: "button", class: "danger", name: "reject",
                               onclick: () => decide(approval, false, tr) }, "Reject")),
        Console.el("div", { class: "result", role: "status" })));
    return tr;
  }

  async function load() {
    if (!document.getElementById("profile").value) return;
    const answer = await Console.data("/approvals");
    if (answer.status !== 200) { Console.notice(Console.refusal(answer)); return; }
    Console.notice(null);
    skew = new Date(answer.body.now).getTime() - Date.now();
    const waiting = new Set(answer.body.approvals.map((approval) => approval.pipeline_id));
    for (const approval of answer.body.approvals) {
      // A row being answered keeps its comment and result; only its time left moves.
      if (!rows.has(approval.pipeline_id)) {
        const tr = row(approval);
        rows.set(approval.pipeline_id, { tr, approval });
        body.append(tr);
      }
      const entry = rows.get(approval.pipeline_id);
      entry.approval = approval;
      entry.tr.querySelector(".time-left").textContent = timeLeft(approval.deadline);
    }
    for (const [pipelineId, entry] of rows) {
      const answered = entry.tr.querySelector(".result.answered");
      if (!waiting.has(pipelineId) && !answered) { entry.tr.remove(); rows.delete(pipelineId); }
    }
    document.getElementById("empty").hidden = rows.size > 0;
    Console.stamp("refreshed");
  }

  Console.poll(load, 2000);
})();
