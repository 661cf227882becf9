"use strict";
// The state machine as a graph: laid out once by dagre (served from node_modules), coloured on every refresh.
const StateGraph = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_HEIGHT = 38;
  const TYPE_LABEL = { Task: "Task", Choice: "Choice", Pass: "Pass", Wait: "Wait", Succeed: "Succeed", Fail: "Fail",
                       Parallel: "Parallel", Map: "Map" };

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  // Text width at 12 px without a canvas: the page's sans-serif averages about 7 px a character.
  let measure = null;
  function textWidth(text) {
    if (!measure) measure = document.createElement("canvas").getContext("2d");
    measure.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
    return measure.measureText(text).width;
  }

  function line(points) {
    let d = "M" + points[0].x + "," + points[0].y;
    for (let index = 1; index < points.length; index += 1) d += " L" + points[index].x + "," + points[index].y;
    return d;
  }

  // Draws `view` (what /console/data/execution answers) into `container`; `onSelect(name)` on a click.
  function create(container, view, onSelect) {
    const graph = new dagre.graphlib.Graph({ multigraph: true });
    graph.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 26, edgesep: 12, marginx: 20, marginy: 20 });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const [name, state] of Object.entries(view.states)) {
      graph.setNode(name, { width: Math.max(110, textWidth(name) + 30), height: NODE_HEIGHT, type: state.type });
    }
    // Catches are left out of the layout: the forward path stays a spine and each catch target gets a vertical
    // bus on the right, which every state that catches into it joins with a short horizontal stub.
    const forward = view.edges.filter((edge) => edge.kind !== "catch");
    const catches = view.edges.filter((edge) => edge.kind === "catch" &&
      !forward.some((other) => other.from === edge.from && other.to === edge.to));
    for (const edge of forward) {
      graph.setEdge(edge.from, edge.to, { kind: edge.kind, labelpos: "c" }, edge.from + "→" + edge.to);
    }
    dagre.layout(graph);
    const size = graph.graph();
    const right = Math.max(...graph.nodes().map((name) => graph.node(name).x + graph.node(name).width / 2));
    const targets = [...new Set(catches.map((edge) => edge.to))];
    const busX = Object.fromEntries(targets.map((target, index) => [target, right + 24 + 18 * index]));
    const width = right + 24 + 18 * targets.length + 12;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + size.height, width, height: size.height,
                              role: "img", "aria-label": "State machine" });
    size.width = width;
    const defs = svg("defs");
    for (const [id, colour] of [["arrow", "#aab2bd"], ["arrow-taken", "#414d5c"], ["arrow-caught", "#d97706"]]) {
      const marker = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
                                     orient: "auto-start-reverse" });
      marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
      defs.append(marker);
    }
    root.append(defs);
    const edgeLayer = svg("g"), nodeLayer = svg("g");
    root.append(edgeLayer, nodeLayer);
    const edges = {};
    function addEdge(from, to, kind, d) {
      const path = svg("path", { d, class: "edge " + kind, "marker-end": "url(#arrow)", "data-from": from, "data-to": to });
      edgeLayer.append(path);
      (edges[from + "→" + to] = edges[from + "→" + to] || []).push(path);
    }
    for (const key of graph.edges()) {
      const label = graph.edge(key);
      addEdge(key.v, key.w, label.kind, line(label.points));
    }
    // A catch leaves its state on the right, runs to its target's bus along the gap below the state's rank and
    // enters the target from the gap above it: horizontal runs stay between ranks, so no line crosses a state.
    const gap = graph.graph().ranksep / 2;
    for (const edge of catches) {
      const source = graph.node(edge.from), target = graph.node(edge.to);
      if (!source || !target) continue;
      const x = busX[edge.to];
      const out = source.x + source.width / 2 + 8;
      const below = source.y + source.height / 2 + gap;
      const above = target.y - target.height / 2 - gap;
      const into = target.x + target.width / 4;
      addEdge(edge.from, edge.to, "catch", line([
        { x: source.x + source.width / 2, y: source.y }, { x: out, y: source.y }, { x: out, y: below },
        { x, y: below }, { x, y: above }, { x: into, y: above }, { x: into, y: target.y - target.height / 2 - 1 }]));
    }
    const nodes = {};
    for (const name of graph.nodes()) {
      const box = graph.node(name);
      const group = svg("g", { class: "node not_reached", transform: "translate(" + (box.x - box.width / 2) + "," +
                               (box.y - box.height / 2) + ")", "data-state": name, tabindex: 0, role: "button",
                               "aria-label": name });
      group.append(svg("rect", { width: box.width, height: box.height, rx: box.type === "Choice" ? 18 : 6 }));
      const title = svg("text", { x: box.width / 2, y: box.height / 2 - 5 });
      title.textContent = name;
      const type = svg("text", { x: box.width / 2, y: box.height / 2 + 10, class: "type" });
      type.textContent = TYPE_LABEL[box.type] || box.type || "";
      const tooltip = svg("title");
      group.append(title, type, tooltip);
      group.addEventListener("click", () => onSelect(name));
      group.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") onSelect(name); });
      nodeLayer.append(group);
      nodes[name] = { group, box, tooltip };
    }
    container.replaceChildren(root);
    let scale = 1;

    function update(next) {
      for (const [name, node] of Object.entries(nodes)) {
        const state = next.states[name] || { status: "not_reached" };
        node.group.classList.remove("succeeded", "failed", "caught", "in_progress", "not_reached");
        node.group.classList.add(state.status);
        node.group.dataset.status = state.status;
        node.tooltip.textContent = name + ": " + state.status.replace("_", " ") +
          (state.error ? " (" + state.error + ")" : "");
      }
      for (const paths of Object.values(edges)) {
        for (const path of paths) { path.classList.remove("taken"); path.setAttribute("marker-end", "url(#arrow)"); }
      }
      for (const step of next.path) {
        for (const path of edges[step.from + "→" + step.to] || []) {
          path.classList.add("taken");
          path.setAttribute("marker-end", path.classList.contains("catch") ? "url(#arrow-caught)" : "url(#arrow-taken)");
        }
      }
    }

    function select(name) {
      for (const node of Object.values(nodes)) node.group.classList.remove("selected");
      if (nodes[name]) nodes[name].group.classList.add("selected");
    }

    function zoom(factor) {
      scale = factor === "fit" ? Math.min(1, (container.clientWidth - 4) / size.width,
                                          (container.clientHeight - 4) / size.height)
                               : Math.max(0.2, Math.min(2, scale * factor));
      root.setAttribute("width", size.width * scale);
      root.setAttribute("height", size.height * scale);
    }

    // Scrolls the graph so that `name` is in view (the state in progress, or the one that failed).
    function reveal(name) {
      const node = nodes[name];
      if (!node) return;
      const top = (node.box.y * scale) - container.clientHeight / 2;
      const left = (node.box.x * scale) - container.clientWidth / 2;
      container.scrollTo({ top: Math.max(0, top), left: Math.max(0, left) });
    }

    return { update, select, zoom, reveal, size };
  }

  return { create };
})();
