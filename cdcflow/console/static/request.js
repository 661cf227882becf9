"use strict";
// The request form: connections offered from GET /connections, the spec built from the fields, the API's 422 by field.
(() => {
  const form = document.getElementById("request-form");
  const result = document.getElementById("request-result");
  const controls = () => [...form.querySelectorAll("[data-field]")];

  async function offerConnections() {
    for (const select of form.querySelectorAll("select[data-kind]")) {
      const kind = select.dataset.kind;
      const answer = await Console.api("GET", "/connections?kind=" + encodeURIComponent(kind));
      if (answer.status !== 200) {
        select.replaceChildren(Console.el("option", { value: "" }, "(cannot list " + kind + " connections)"));
        Console.notice(Console.refusal(answer));
        continue;
      }
      const found = answer.body.connections || [];
      const options = found.map((connection) => Console.el("option", { value: connection.name },
        connection.name + (connection.description ? " — " + connection.description : "")));
      select.replaceChildren(Console.el("option", { value: "" },
        found.length ? "(choose a " + kind + ")" : "(no " + kind + " connection your teams may use)"), ...options);
      if (found.length === 1) select.value = found[0].name;
    }
    preview();
  }

  function valueOf(control) {
    const raw = control.value.trim();
    if (control.dataset.type === "list") return raw ? raw.split(/[\n,]+/).map((item) => item.trim()).filter(Boolean) : [];
    if (raw === "") return undefined;
    // A number the browser could not read is sent as typed: the API names the field.
    if (control.dataset.type === "integer") return /^-?\d+$/.test(raw) ? Number(raw) : raw;
    return raw;
  }

  // The spec as the fields give it: an empty optional field is left out, an empty list sent (the API names it).
  function spec() {
    const document_ = {};
    for (const control of controls()) {
      const value = valueOf(control);
      if (value === undefined) continue;
      const parts = control.dataset.field.split(".");
      let node = document_;
      for (const part of parts.slice(0, -1)) node = node[part] = node[part] || {};
      node[parts[parts.length - 1]] = value;
    }
    return document_;
  }

  function preview() {
    document.getElementById("preview").textContent = JSON.stringify(spec(), null, 2);
  }

  function clearErrors() {
    for (const box of form.querySelectorAll("[data-error-for]")) { box.hidden = true; box.textContent = ""; }
    for (const control of controls()) control.removeAttribute("aria-invalid");
    for (const holder of form.querySelectorAll(".field.invalid")) holder.classList.remove("invalid");
  }

  // Where the API's field is shown: `source.tables[1]` at source.tables; "'tables' is a required property" of
  // `source` at source.tables; anything else the form has no field for, under the form.
  function boxFor(field, message) {
    let path = (field || "(spec)").replace(/\[\d+\]/g, "");
    const missing = /^'([^']+)' is a required property/.exec(message || "");
    if (missing) path = path === "(spec)" ? missing[1] : path + "." + missing[1];
    while (path && !form.querySelector('[data-error-for="' + CSS.escape(path) + '"]')) {
      path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
    }
    return form.querySelector('[data-error-for="' + CSS.escape(path || "(spec)") + '"]');
  }

  function showProblems(problems) {
    for (const problem of problems) {
      const box = boxFor(problem.field, problem.message);
      box.hidden = false;
      box.append(Console.el("span", { class: "problem" }, (problem.field ? problem.field + ": " : "") + problem.message));
      const control = form.querySelector('[data-field="' + CSS.escape(box.dataset.errorFor) + '"]');
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.closest(".field").classList.add("invalid");
        const details = control.closest("details");
        if (details) details.open = true;
      }
    }
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  // Editing a field takes its problem away: it is the API's to say again on the next send.
  function clearField(control) {
    const field = control.dataset && control.dataset.field;
    if (!field) return;
    const box = form.querySelector('[data-error-for="' + CSS.escape(field) + '"]');
    if (box) { box.hidden = true; box.textContent = ""; }
    control.removeAttribute("aria-invalid");
    const holder = control.closest(".field");
    if (holder) holder.classList.remove("invalid");
  }

  form.addEventListener("input", (event) => { clearField(event.target); preview(); });
  form.addEventListener("change", preview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const sent = spec();
    result.className = "";
    result.textContent = "Sending…";
    const answer = await Console.api("POST", "/pipelines", sent);
    if (answer.status === 202) {
      result.className = "answered";
      result.replaceChildren("Provisioning started: ",
        Console.el("a", { href: Console.executionHref(answer.body.pipeline_id, answer.body.execution_arn),
          id: "request-execution" }, "its execution"), " · ",
        Console.el("a", { href: "/console/pipelines/" + encodeURIComponent(answer.body.pipeline_id),
          id: "request-pipeline" }, "the pipeline"));
      return;
    }
    result.className = "refused";
    result.textContent = "Refused. " + Console.refusal(answer);
    const body = answer.body || {};
    showProblems(body.problems || [{ field: body.field, message: body.message || "no message" }]);
  });

  Console.whoami().then((user) => { if (user) offerConnections(); else preview(); });
})();
