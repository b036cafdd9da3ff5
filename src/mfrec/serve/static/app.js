// The guest page: onboarding with popular films, title search, stars, live recommendations.
// Ratings live in localStorage until saved under a user id. Every text from the server is set
// with textContent (never as HTML): titles are data, not markup.
"use strict";

const STORE_KEY = "mfrec.guest.v1";
const N_RECS = 20;
let scale = [1, 5];
let state = load();
let recsController = null;
let searchController = null;
let searchTimer = null;

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
    return { ratings: s.ratings && typeof s.ratings === "object" ? s.ratings : {} };
  } catch (e) {
    return { ratings: {} };
  }
}

function save() {
  localStorage.setItem(STORE_KEY, JSON.stringify(state));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function starValue(k) {
  const [lo, hi] = scale;
  if (hi === 5 && lo <= 1) return Math.max(lo, k);
  return lo + ((k - 1) * (hi - lo)) / 4;
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const msg = body && body.error ? body.error : `HTTP ${res.status}`;
    throw new Error(msg);
  }
  return body;
}

function genresText(item) {
  return (item.genres || []).join(", ") + (item.year ? ` · ${item.year}` : "");
}

function starsFor(item) {
  const box = el("span", "stars");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Rate " + (item.title || item.id));
  const key = String(item.id);
  const current = state.ratings[key] ? state.ratings[key].stars : 0;
  for (let k = 1; k <= 5; k++) {
    const b = el("button", "star" + (k <= current ? " on" : ""), "★");
    b.type = "button";
    b.dataset.stars = String(k);
    b.setAttribute("aria-label", `${k} star${k > 1 ? "s" : ""}`);
    b.addEventListener("click", () => rate(item, k, box));
    box.appendChild(b);
  }
  return box;
}

function itemRow(item, extra) {
  const li = el("li", "item");
  li.dataset.id = String(item.id);
  li.appendChild(el("span", "title", item.title || `item ${item.id}`));
  li.appendChild(starsFor(item));
  li.appendChild(el("span", "genres", genresText(item)));
  if (extra) li.appendChild(extra);
  return li;
}

function showCandidates(items, label) {
  const ul = document.getElementById("candidates");
  ul.replaceChildren(...items.map((it) => itemRow(it)));
  document.getElementById("list-label").textContent = label;
}

function rate(item, k, box) {
  const key = String(item.id);
  if (state.ratings[key] && state.ratings[key].stars === k) {
    delete state.ratings[key]; // clicking the same star again removes the rating
  } else {
    state.ratings[key] = { stars: k, value: starValue(k), title: item.title || key };
  }
  save();
  const now = state.ratings[key] ? state.ratings[key].stars : 0;
  box.querySelectorAll(".star").forEach((b) => b.classList.toggle("on", Number(b.dataset.stars) <= now));
  showRated();
  refresh();
}

function showRated() {
  const keys = Object.keys(state.ratings);
  document.getElementById("count").textContent = String(keys.length);
  const ul = document.getElementById("rated");
  ul.replaceChildren(...keys.map((k) => el("li", null, `${state.ratings[k].title} ${"★".repeat(state.ratings[k].stars)}`)));
}

async function refresh() {
  const ratings = {};
  for (const [k, r] of Object.entries(state.ratings)) ratings[k] = r.value;
  if (recsController) recsController.abort();
  recsController = new AbortController();
  const status = document.getElementById("status");
  const n = Object.keys(ratings).length;
  status.textContent = n ? "" : "Showing generally popular picks: rate a few films to make them yours.";
  try {
    const res = await api("/recommendations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ratings, n: N_RECS, explain: 2 }),
      signal: recsController.signal,
    });
    showRecs(res.items, n);
  } catch (e) {
    if (e.name !== "AbortError") status.textContent = "Could not get recommendations: " + e.message;
  }
}

function showRecs(items, nRated) {
  const ol = document.getElementById("recs");
  ol.replaceChildren(...items.map((it) => {
    const because = it.because && it.because.length ? el("span", "because", "because you liked " + it.because.join(", ")) : null;
    return itemRow(it, because);
  }));
  ol.dataset.updated = String(Date.now());
  ol.dataset.ratings = String(nRated); // how many ratings this list was computed from
}

function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = document.getElementById("search").value.trim();
    if (searchController) searchController.abort();
    searchController = new AbortController();
    try {
      if (!q) {
        const res = await api("/items/popular?n=30", { signal: searchController.signal });
        showCandidates(res.items, "Popular films to start with");
      } else {
        const res = await api("/items?search=" + encodeURIComponent(q) + "&limit=20", { signal: searchController.signal });
        showCandidates(res.items, res.items.length ? `Titles matching “${q}”` : `No title matches “${q}”`);
      }
    } catch (e) {
      if (e.name !== "AbortError") document.getElementById("list-label").textContent = "Search failed: " + e.message;
    }
  }, 150);
}

async function saveAll(ev) {
  ev.preventDefault();
  const user = document.getElementById("user-id").value.trim();
  const key = document.getElementById("api-key").value;
  const out = document.getElementById("save-status");
  const entries = Object.entries(state.ratings);
  let done = 0;
  try {
    for (const [item, r] of entries) {
      await api(`/users/${encodeURIComponent(user)}/ratings/${encodeURIComponent(item)}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-API-Key": key },
        body: JSON.stringify({ rating: r.value }),
      });
      done++;
    }
    out.textContent = `Saved ${done} rating${done === 1 ? "" : "s"} as ${user}.`;
  } catch (e) {
    out.textContent = `Saved ${done} of ${entries.length}: ${e.message}`;
  }
}

async function main() {
  try {
    const h = await api("/health");
    if (Array.isArray(h.rating_scale)) scale = h.rating_scale.map(Number);
  } catch (e) { /* keep the default scale */ }
  document.getElementById("search").addEventListener("input", onSearch);
  document.getElementById("clear").addEventListener("click", () => {
    state = { ratings: {} };
    save();
    showRated();
    onSearch();
    refresh();
  });
  document.getElementById("save-form").addEventListener("submit", saveAll);
  showRated();
  onSearch();
  refresh();
}

main();
