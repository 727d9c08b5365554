// The labeling page: one queried pixel at a time, every answer POSTed (and saved) at once.
"use strict";
const token = encodeURIComponent(new URLSearchParams(location.search).get("token") || "");
const api = (path) => path + (path.includes("?") ? "&" : "?") + "token=" + token;
const ZOOM_RADIUS = 12;  // original pixels shown on each side of the queried one

let state = null;        // from /api/state
let current = 0;         // index into state.queries
const undoStack = [];    // {answer_id, query_id} of the answers given on this page, newest last
const images = {};       // image id -> loaded <img>

async function post(path, body) {
  const r = await fetch(api(path), {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

async function refresh() {
  const r = await fetch(api("/api/state"));
  state = await r.json();
  document.getElementById("project").textContent = state.project;
}

function image(id) {
  if (!images[id]) {
    images[id] = new Image();
    images[id].src = api("/api/image/" + id);
    images[id].onload = draw;
  }
  return images[id];
}

function firstPending(from) {
  const n = state.queries.length;
  for (let k = 0; k < n; k++) {
    const i = (from + k) % n;
    if (state.queries[i].label === null) return i;
  }
  return Math.min(from, n - 1);
}

function buildButtons() {
  const box = document.getElementById("classes");
  box.innerHTML = "";
  const entries = state.classes.map(c => ({name: c.name, colour: c.colour, key: c.key}));
  entries.push({name: state.void, colour: "#ffffff", key: "v", label: "void / unsure"});
  for (const c of entries) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.label = c.name;
    b.id = "class-" + c.name.replace(/[^A-Za-z0-9_-]/g, "_");
    b.innerHTML = '<span class="swatch"></span><span class="name"></span>' + (c.key ? "<kbd></kbd>" : "");
    b.querySelector(".swatch").style.background = c.colour;
    b.querySelector(".name").textContent = c.label || c.name;
    if (c.key) b.querySelector("kbd").textContent = c.key;
    b.addEventListener("click", () => { b.blur(); give(c.name); });  // keys keep working after a click
    box.appendChild(b);
  }
}

function draw() {
  const n = state.queries.length;
  const pending = state.pending;
  document.getElementById("progress").textContent =
    `answered ${state.answered} / ${n} \u00b7 pending ${pending}`;
  const bar = document.getElementById("progressbar");
  bar.max = Math.max(n, 1); bar.value = state.answered;
  if (n === 0) {
    document.getElementById("where").textContent = "No queries yet: run 'skal-seg query PROJECT --budget N'.";
    return;
  }
  const q = state.queries[current];
  document.getElementById("where").textContent =
    `query ${current + 1} of ${n}: ${q.path}, pixel (y=${q.y}, x=${q.x}), round ${q.round_id}`;
  document.getElementById("current").textContent =
    q.label === null ? "not answered yet" : `answered: ${q.label} (click another class to change)`;
  document.querySelectorAll("#classes button").forEach(b =>
    b.classList.toggle("chosen", b.dataset.label === q.label));
  const img = image(q.image_id);
  if (!img.complete || !img.naturalWidth) return;
  const canvas = document.getElementById("image");
  // the whole image in the window beside the side panel, so the marked pixel is always in view
  const panel = document.querySelector("aside").getBoundingClientRect().width;
  const maxW = Math.max(200, window.innerWidth - panel - 70), maxH = Math.max(200, window.innerHeight - 80);
  const scale = Math.min(maxW / q.width, maxH / q.height, 8);
  canvas.width = Math.round(q.width * scale); canvas.height = Math.round(q.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  const cx = (q.x + 0.5) * scale, cy = (q.y + 0.5) * scale;
  for (const [colour, width] of [["#000", 5], ["#ffeb3b", 2]]) {  // visible on light and dark images
    ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.beginPath(); ctx.arc(cx, cy, 10, 0, 2 * Math.PI); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(cx - 20, cy); ctx.lineTo(cx - 12, cy); ctx.moveTo(cx + 12, cy); ctx.lineTo(cx + 20, cy);
    ctx.moveTo(cx, cy - 20); ctx.lineTo(cx, cy - 12); ctx.moveTo(cx, cy + 12); ctx.lineTo(cx, cy + 20); ctx.stroke();
  }
  const zoom = document.getElementById("zoom");
  const z = zoom.getContext("2d");
  const side = 2 * ZOOM_RADIUS + 1, cell = zoom.width / side;
  z.imageSmoothingEnabled = false;
  z.fillStyle = "#000"; z.fillRect(0, 0, zoom.width, zoom.height);
  z.drawImage(img, q.x - ZOOM_RADIUS, q.y - ZOOM_RADIUS, side, side, 0, 0, zoom.width, zoom.height);
  z.strokeStyle = "#ffeb3b"; z.lineWidth = 2;
  z.strokeRect(ZOOM_RADIUS * cell, ZOOM_RADIUS * cell, cell, cell);
}

function say(text) { document.getElementById("message").textContent = text; }

async function give(label) {
  const q = state.queries[current];
  if (!q) return;
  try {
    if (q.answer_id !== null) {  // changing an answer: take the old one back first
      await post("/api/undo", {answer_id: q.answer_id, query_id: q.id});
      const k = undoStack.findIndex(u => u.answer_id === q.answer_id);
      if (k >= 0) undoStack.splice(k, 1);
    }
    const r = await post("/api/answer", {query_id: q.id, label: label});
    undoStack.push({answer_id: r.answer_id, query_id: q.id});
    say("");
  } catch (err) {
    say("not saved: " + err.message);
  }
  await refresh();
  current = firstPending(current);
  draw();
}

async function undo() {
  const last = undoStack.pop();
  if (last === undefined) { say("nothing to undo on this page"); return; }
  try {  // naming the query too: an answer changed meanwhile (another tab) is refused, not deleted
    const r = await post("/api/undo", last);
    await refresh();
    const i = state.queries.findIndex(q => q.id === r.query_id);
    if (i >= 0) current = i;
    say("undone");
  } catch (err) {
    say("undo failed: " + err.message);
    await refresh();
  }
  draw();
}

function move(step) {
  const n = state.queries.length;
  if (n) current = (current + step + n) % n;
  draw();
}

document.addEventListener("keydown", (e) => {
  if (!state || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "Backspace") { e.preventDefault(); undo(); return; }
  if (e.key === "ArrowRight" || e.key === "ArrowDown") { e.preventDefault(); move(1); return; }
  if (e.key === "ArrowLeft" || e.key === "ArrowUp") { e.preventDefault(); move(-1); return; }
  if (e.key === "v" || e.key === "V") { give(state.void); return; }
  const c = state.classes.find(c => c.key === e.key);
  if (c) give(c.name);
});

window.addEventListener("resize", () => { if (state) draw(); });

(async () => {
  await refresh();
  buildButtons();
  current = firstPending(0);
  draw();
})();
