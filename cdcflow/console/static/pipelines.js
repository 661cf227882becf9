"use strict";
// The pipelines list: filters in the URL, refreshed every 2 s.
(() => {
  const form = document.getElementById("filters");
  const body = document.querySelector("#pipelines tbody");
  const owners = new Set();
  const PAGE_SIZE = 100;
  let shownPages = 1;
  const more = document.getElementById("more");
  const params = new URLSearchParams(location.search);
  form.status.value = params.get("status") || "";
  form.owner.value = params.get("owner") || "";

  function filters() {
    const query = new URLSearchParams();
    if (form.status.value) query.set("status", form.status.value);
    if (form.owner.value.trim()) query.set("owner", form.owner.value.trim());
    return query;
  }

  async function load() {
    if (!document.getElementById("profile").value) return;
    const query = filters();
    // The first PAGE_SIZE pipelines, and as many pages more as "Show more" asked for.
    let pipelines = [], token = null, pages = 0;
    do {
      const page = new URLSearchParams(query);
      page.set("limit", String(PAGE_SIZE));
      if (token) page.set("next_token", token);
      const answer = await Console.api("GET", "/pipelines?" + page.toString());
      if (answer.status !== 200) { Console.notice(Console.refusal(answer)); return; }
      pipelines = pipelines.concat(answer.body.pipelines);
      token = answer.body.next_token;
      pages += 1;
    } while (token && pages < shownPages);
    Console.notice(null);
    more.hidden = !token;
    render(pipelines);
    Console.stamp("refreshed");
  }

  // The alarms in ALARM (the pipeline's page has each one's state and reason); "—" when CloudWatch could not be read.
  function alarmCell(firing) {
    if (firing === undefined) return "—";
    if (firing.length === 0) return Console.el("span", { class: "muted" }, "OK");
    return Console.el("span", { class: "refused" }, "ALARM: " + firing.join(", "));
  }

  function render(pipelines) {
    pipelines.sort((a, b) => a.pipeline_id.localeCompare(b.pipeline_id));
    const rows = pipelines.map((pipeline) => {
      owners.add(pipeline.owner);
      const href = "/console/pipelines/" + encodeURIComponent(pipeline.pipeline_id);
      return Console.el("tr", { "data-pipeline": pipeline.pipeline_id, "data-status": pipeline.status },
        Console.el("td", {}, Console.el("a", { href }, pipeline.pipeline_id)),
        Console.el("td", {}, pipeline.owner),
        Console.el("td", {}, Console.badge(pipeline.status)),
        Console.el("td", {}, pipeline.current_step || "—",
          pipeline.last_error ? Console.el("div", { class: "refused small" }, pipeline.last_error.error) : null),
        Console.el("td", { class: "num" }, Console.bytes(pipeline.slot_lag_bytes)),
        Console.el("td", { class: "alarms" }, alarmCell(pipeline.alarms_firing)),
        Console.el("td", {}, Console.time(pipeline.updated_at)));
    });
    body.replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    const list = document.getElementById("owners");
    list.replaceChildren(...[...owners].sort().map((owner) => Console.el("option", { value: owner })));
  }

  const poller = Console.poll(load, 2000);
  function changed() {
    const query = filters().toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    poller.now();
  }
  more.addEventListener("click", () => { shownPages += 1; poller.now(); });
  form.addEventListener("change", () => { shownPages = 1; changed(); });
  form.addEventListener("submit", (event) => { event.preventDefault(); changed(); });
})();
