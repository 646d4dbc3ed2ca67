// The search page: runs /search, shows results, and reports a click on a
// result with its dwell time (how long the reader stayed open) through
// /click. A click is sent when its reader closes: the close button, opening
// another result, a new search, or the page being hidden or left.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 10;
const session = sessionStorage.getItem("rerank-session") || randomID();
sessionStorage.setItem("rerank-session", session);

let state = { q: "", from: 0, total: 0, searchID: "" };
let open = null; // the result being read: {searchID, docID, position, since, eventID, el, sent}
// (sent starts true when the search was not logged: there is nothing to report to)

function randomID() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function status(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

// reportClick sends the open result's click once; keepalive/beacon lets it
// leave even while the page unloads.
function reportClick(unloading) {
  if (!open || open.sent) return;
  open.sent = true;
  const body = JSON.stringify({
    search_id: open.searchID, doc_id: open.docID, position: open.position,
    dwell_ms: Math.round(performance.now() - open.since), event_id: open.eventID,
  });
  if (unloading && navigator.sendBeacon) {
    navigator.sendBeacon("/click", new Blob([body], { type: "application/json" }));
    return;
  }
  fetch("/click", { method: "POST", headers: { "Content-Type": "application/json" }, body, keepalive: true })
    .then(async (r) => { if (!r.ok) status("click not recorded: " + (await r.json()).error, true); })
    .catch(() => status("click not recorded: network error", true));
}

function closeReader() {
  reportClick(false);
  if (open) open.el.remove();
  open = null;
}

async function openReader(li, hit, searchID, logged) {
  closeReader();
  const el = document.createElement("div");
  el.className = "reader";
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.textContent = "Close";
  close.addEventListener("click", closeReader);
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = "Loading…";
  el.append(close, text);
  li.append(el);
  open = { searchID, docID: hit.id, position: hit.rank, since: performance.now(), eventID: randomID(), el, sent: !logged };
  try {
    const r = await fetch("/docs/" + encodeURIComponent(hit.id));
    const d = await r.json();
    text.textContent = r.ok ? d.text : d.error;
  } catch (e) {
    text.textContent = "Could not load the document.";
  }
}

// highlighted builds the snippet with <mark> around matched terms; offsets
// are in code points, as the server counts them.
function highlighted(snippet, spans) {
  const p = document.createElement("p");
  p.className = "snippet";
  const chars = Array.from(snippet);
  let at = 0;
  for (const sp of spans) {
    if (sp.start < at) continue;
    p.append(chars.slice(at, sp.start).join(""));
    const m = document.createElement("mark");
    m.textContent = chars.slice(sp.start, sp.end).join("");
    p.append(m);
    at = sp.end;
  }
  p.append(chars.slice(at).join(""));
  return p;
}

function render(res) {
  const ol = $("results");
  ol.replaceChildren();
  ol.start = res.from + 1;
  for (const hit of res.hits) {
    const li = document.createElement("li");
    li.className = "hit";
    li.dataset.id = hit.id;
    const h2 = document.createElement("h2");
    const a = document.createElement("a");
    // Without script (or with a modifier key) the link logs the click itself
    // and redirects to the document.
    a.href = res.logged ? "/click?" + new URLSearchParams({ search_id: res.search_id, doc_id: hit.id, position: hit.rank })
      : "/doc/" + encodeURIComponent(hit.id);
    a.textContent = hit.title || hit.id;
    a.addEventListener("click", (ev) => {
      if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      if (open && open.docID === hit.id && open.searchID === res.search_id) { closeReader(); return; }
      openReader(li, hit, res.search_id, res.logged);
    });
    h2.append(a);
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${hit.id} · BM25 ${hit.bm25_score.toFixed(2)} (#${hit.bm25_rank})` +
      (hit.rerank_score !== undefined ? ` · rerank ${hit.rerank_score.toFixed(3)}` : "");
    li.append(h2, highlighted(hit.snippet, hit.highlights), meta);
    ol.append(li);
  }
  const last = res.from + res.hits.length;
  status(res.total === 0 ? `No results for “${res.query}”.` :
    `${res.from + 1}–${last} of ${res.total} · ${res.took_ms.toFixed(1)} ms`);
  if (res.reranked) {
    const b = document.createElement("span");
    b.className = "badge";
    b.textContent = "reranked" + (res.model_version ? " by " + res.model_version : "");
    $("status").append(b);
  }
  $("pager").hidden = res.total <= PAGE;
  $("prev").disabled = res.from === 0;
  $("next").disabled = last >= res.total;
}

async function run(q, from, push) {
  closeReader();
  state = { q, from, total: 0, searchID: "" };
  if (push) history.pushState(null, "", "/?" + new URLSearchParams({ q, from }));
  document.title = q + " – rerank search";
  status("Searching…");
  try {
    const r = await fetch("/search?" + new URLSearchParams({ q, from, size: PAGE, session }));
    const res = await r.json();
    if (!r.ok) { $("results").replaceChildren(); $("pager").hidden = true; status(res.error, true); return; }
    state.total = res.total;
    state.searchID = res.search_id;
    render(res);
  } catch (e) {
    status("Search failed: network error", true);
  }
}

function fromURL() {
  const p = new URLSearchParams(location.search);
  const q = p.get("q") || "";
  $("q").value = q;
  if (q.trim()) run(q, Math.max(0, parseInt(p.get("from") || "0", 10) || 0), false);
}

$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("q").value;
  if (q.trim()) run(q, 0, true);
});
$("prev").addEventListener("click", () => run(state.q, Math.max(0, state.from - PAGE), true));
$("next").addEventListener("click", () => run(state.q, state.from + PAGE, true));
window.addEventListener("popstate", fromURL);
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") reportClick(true); });
window.addEventListener("pagehide", () => reportClick(true));
fromURL();
