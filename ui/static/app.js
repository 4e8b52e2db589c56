// membrane ui: the page. Reads /api/events (Server-Sent Events) and /api/matrix; draws
// the service map with Cytoscape.js and the fcose layout (vendored, see
// vendor/VERSIONS.md). The server sends each flow already shaped (ui/flowview.py) and
// the map as Cytoscape elements (ui/servicemap.py); this file only shows them.
"use strict";

cytoscape.use(cytoscapeFcose);

const MAX_ROWS = 1000;
const state = { flows: new Map(), source: null, selected: null, laidOut: "" };

// -- the service map --------------------------------------------------------------

const cy = cytoscape({
  container: document.getElementById("map"),
  style: [
    { selector: "node", style: {
      "label": "data(label)", "text-wrap": "wrap", "font-size": 10, "text-valign": "bottom",
      "text-margin-y": 4, "background-color": "#2f5fd0", "width": 22, "height": 22,
      "color": "#1d2330" } },
    { selector: "node[kind = 'namespace']", style: {
      "shape": "round-rectangle", "background-color": "#eef1f7", "border-color": "#b8c0d2",
      "border-width": 1, "text-valign": "top", "text-halign": "center", "font-size": 11,
      "font-weight": "bold", "padding": 14 } },
    { selector: "node[kind = 'world']", style: { "shape": "diamond",
      "background-color": "#8e5bd0" } },
    { selector: "node[kind = 'host'], node[kind = 'remote-node']", style: {
      "shape": "square", "background-color": "#6b7385" } },
    { selector: "edge", style: {
      "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 2,
      "line-color": "#1f8a4c", "target-arrow-color": "#1f8a4c", "label": "data(label)",
      "font-size": 8, "text-rotation": "autorotate", "text-background-color": "#fff",
      "text-background-opacity": 0.8, "color": "#3a4152" } },
    { selector: "edge.dropped", style: {
      "line-color": "#c62828", "target-arrow-color": "#c62828", "line-style": "dashed",
      "width": 3 } },
    { selector: ":selected", style: { "border-width": 3, "border-color": "#f2a900",
      "line-color": "#f2a900", "target-arrow-color": "#f2a900" } },
  ],
});

function applyMap(elements) {
  const wanted = new Set();
  const all = [...elements.nodes, ...elements.edges];
  cy.batch(() => {
    for (const el of all) {
      wanted.add(el.data.id);
      const have = cy.getElementById(el.data.id);
      if (have.nonempty()) {
        have.data(el.data);
        have.classes(el.classes || "");
      } else {
        cy.add({ group: el.data.source ? "edges" : "nodes", data: el.data,
                 classes: el.classes || "" });
      }
    }
    cy.elements().filter((el) => !wanted.has(el.id())).remove();
  });
  // Lay out again only when what is drawn changed, not for new counts.
  const shape = [...wanted].sort().join("|");
  if (shape !== state.laidOut) {
    state.laidOut = shape;
    cy.layout({ name: "fcose", animate: false, nodeDimensionsIncludeLabels: true,
                packComponents: true, idealEdgeLength: 110, nodeRepulsion: 9000,
                randomize: true }).run();
  }
}

cy.on("tap", "edge", (evt) => showEdge(evt.target.data()));
cy.on("tap", "node[kind != 'namespace']", (evt) => showNode(evt.target.data()));

// -- the flow table ---------------------------------------------------------------

const tbody = document.querySelector("#flows tbody");

function sideText(side) {
  if (side.kind === "pod") return `${side.namespace}/${side.pod}`;
  return `${side.ip} (${side.kind})`;
}

function addRow(view, atTop) {
  state.flows.set(view.seq, view);
  const tr = document.createElement("tr");
  tr.dataset.seq = view.seq;
  const cells = [view.time.replace("T", " ").replace("Z", ""), view.node,
                 sideText(view.source), sideText(view.destination),
                 view.port === null ? view.protocol : `${view.protocol}/${view.port}`,
                 view.verdict + (view.drop_reason ? ` (${view.drop_reason})` : ""),
                 view.summary + (view.is_reply ? " (reply)" : "")];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 5) td.className = `verdict-${view.verdict}`;
    tr.appendChild(td);
  });
  tr.className = `flow verdict-row-${view.verdict}`;
  tr.addEventListener("click", () => selectRow(tr, view));
  if (atTop) tbody.insertBefore(tr, tbody.firstChild); else tbody.appendChild(tr);
  while (tbody.rows.length > MAX_ROWS) {
    const last = tbody.rows[tbody.rows.length - 1];
    state.flows.delete(Number(last.dataset.seq));
    last.remove();
  }
}

function selectRow(tr, view) {
  if (state.selected) state.selected.classList.remove("selected");
  tr.classList.add("selected");
  state.selected = tr;
  showFlow(view);
}

// -- the detail panel -------------------------------------------------------------

const detail = document.getElementById("detail");

function dl(pairs) {
  const out = document.createElement("dl");
  for (const [key, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    if (Array.isArray(value)) {
      const ul = document.createElement("ul");
      for (const item of value) {
        const li = document.createElement("li");
        li.textContent = item;
        ul.appendChild(li);
      }
      dd.appendChild(value.length ? ul : document.createTextNode("none"));
    } else {
      dd.textContent = value === "" || value === null || value === undefined ? "-" : value;
    }
    out.append(dt, dd);
  }
  return out;
}

function heading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

function sidePairs(side) {
  return [["pod", side.kind === "pod" ? `${side.namespace}/${side.pod}` : side.kind],
          ["workload", side.workload ? `${side.workload_kind}/${side.workload}` : ""],
          ["address", side.port ? `${side.ip}:${side.port}` : side.ip],
          ["identity", side.identity], ["labels", side.labels]];
}

function showFlow(view) {
  const p = view.policies;
  detail.replaceChildren(
    dl([["verdict", view.verdict], ["drop reason", view.drop_reason],
        ["time", view.time], ["node", view.node], ["direction", view.direction],
        ["protocol", view.port === null ? view.protocol : `${view.protocol}/${view.port}`],
        ["summary", view.summary], ["reply", view.is_reply ? "yes" : "no"]]),
    heading("Source"), dl(sidePairs(view.source)),
    heading("Destination"), dl(sidePairs(view.destination)),
    heading("Policies"),
    dl([["ingress allowed by", p.ingress_allowed_by], ["egress allowed by", p.egress_allowed_by],
        ["ingress denied by", p.ingress_denied_by], ["egress denied by", p.egress_denied_by]]));
  detail.dataset.showing = `flow:${view.seq}`;
}

function showEdge(data) {
  detail.replaceChildren(
    heading(`${data.source.replace(/^\w+:/, "")} → ${data.target.replace(/^\w+:/, "")}`),
    dl([["ports", data.ports],
        ["flows", Object.entries(data.verdicts).map(([v, n]) => `${v}: ${n}`)],
        ["drop reasons", Object.entries(data.reasons).map(([r, n]) => `${r}: ${n}`)]]));
  detail.dataset.showing = `edge:${data.id}`;
}

function showNode(data) {
  detail.replaceChildren(
    heading(data.label.split("\n")[0]),
    dl(data.kind === "workload"
      ? [["namespace", data.namespace], ["pods", data.pods || []],
         ["identity", data.identity], ["labels", data.labels || []]]
      : [["address", data.id.replace(/^ip:/, "")], ["kind", data.kind]]));
  detail.dataset.showing = `node:${data.id}`;
}

// -- the live stream --------------------------------------------------------------

const statusEl = document.getElementById("status");

function showStatus(st) {
  const lost = st.lost ? `, ${st.lost} lost by this page` : "";
  statusEl.textContent = st.connected
    ? `${st.address}: connected, ${st.flows} flows${lost}`
    : `${st.address}: ${st.error || "connecting…"}`;
  statusEl.classList.toggle("down", !st.connected);
}

function filterQuery() {
  const form = new FormData(document.getElementById("filters"));
  const query = new URLSearchParams();
  for (const [key, value] of form) if (String(value).trim()) query.set(key, value);
  return query.toString();
}

function connect() {
  if (state.source) state.source.close();
  tbody.replaceChildren();
  state.flows.clear();
  const source = new EventSource(`/api/events?${filterQuery()}`);
  state.source = source;
  source.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  source.addEventListener("map", (e) => applyMap(JSON.parse(e.data)));
  source.addEventListener("flows", (e) => {
    for (const view of JSON.parse(e.data)) addRow(view, true);
  });
  source.addEventListener("flow", (e) => addRow(JSON.parse(e.data), true));
  source.onerror = () => statusEl.classList.add("down");
}

document.getElementById("filters").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = document.getElementById("filter-error");
  const check = await fetch(`/api/flows?${filterQuery()}`);
  error.textContent = check.ok ? "" : await check.text();
  if (check.ok) connect();
});
document.getElementById("filters").addEventListener("reset", () => setTimeout(connect, 0));

// -- the policy matrix ------------------------------------------------------------

const matrixEl = document.getElementById("matrix");
const portSelect = document.getElementById("matrix-port");
let matrixData = null;

async function loadMatrix() {
  const response = await fetch("/api/matrix");
  if (!response.ok) {
    matrixEl.textContent = await response.text();
    return;
  }
  matrixData = await response.json();
  const current = portSelect.value;
  portSelect.replaceChildren(...matrixData.ports.map((p) => new Option(p, p)));
  if (matrixData.ports.includes(current)) portSelect.value = current;
  document.getElementById("matrix-policies").textContent =
    `${matrixData.policies.length} policies in force` +
    (matrixData.errors.length ? `; ${matrixData.errors.join("; ")}` : "");
  drawMatrix();
}

function drawMatrix() {
  if (!matrixData) return;
  const grid = matrixData.allowed[portSelect.value];
  const pods = matrixData.pods;
  if (!grid || !pods.length) {
    matrixEl.textContent = "no pods known to the agents yet";
    return;
  }
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th")).textContent = "from \\ to";
  pods.forEach((pod, i) => {
    const th = document.createElement("th");
    th.textContent = `${i + 1}`;
    th.title = pod;
    head.appendChild(th);
  });
  const body = table.createTBody();
  pods.forEach((src, i) => {
    const row = body.insertRow();
    row.insertCell().textContent = `${i + 1} ${src}`;
    pods.forEach((dst, j) => {
      const td = row.insertCell();
      const self = i === j;
      td.className = `cell ${self ? "self" : grid[i][j] ? "allowed" : "denied"}`;
      td.textContent = self ? "-" : grid[i][j] ? "✓" : "✗";
      td.title = `${src} → ${dst} ${portSelect.value}: ${self ? "same pod" :
        grid[i][j] ? "allowed" : "denied"}`;
    });
  });
  matrixEl.replaceChildren(table);
}

portSelect.addEventListener("change", drawMatrix);
document.getElementById("matrix-refresh").addEventListener("click", loadMatrix);

connect();
loadMatrix();
setInterval(loadMatrix, 15000);
window.membraneUI = { cy, state };   // for tests and for the console
