(function () {
  "use strict";
  // All text from the CSV goes into the page as text (textContent, value), never as HTML.
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const STATIC = cfg.mode === "static";
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const nf = new Intl.NumberFormat("en-US");
  const input = $("reading");
  const items = cfg.items;
  const byRow = new Map(items.map((it) => [it.row, it]));
  const reviews = new Map();  // row -> {value, status}
  const payloads = new Map();  // row -> Promise of the item's images
  let order = [];  // the items shown (after the filters), in queue order
  let cur = -1;  // index into order
  let saving = Promise.resolve();
  let pendingSaves = 0;

  // ---- state: the server's reviewed file, or the browser's storage for the static page
  function loadState() {
    let saved = cfg.reviews || {};
    if (STATIC) {  // this browser's state, or the reviewed file's when the page was made
      try { saved = JSON.parse(localStorage.getItem(cfg.storageKey) || "null") || cfg.initial; } catch (e) { saved = cfg.initial; }
    }
    for (const [row, r] of Object.entries(saved)) {
      if (Array.isArray(r) && r[1]) reviews.set(Number(row), { value: String(r[0]), status: String(r[1]) });
    }
  }
  function storeStatic() {
    const out = {};
    for (const [row, r] of reviews) if (r.status) out[row] = [r.value, r.status];
    try { localStorage.setItem(cfg.storageKey, JSON.stringify(out)); } catch (e) { showError("Cannot keep the state in this browser: " + e); }
  }

  // ---- the decisions: the same rules as formdigits.review.queue.decide
  function decide(it, action, typed) {
    if (action === "confirm") return { value: typed, status: typed === it.value ? "verified" : "corrected" };
    return { value: "", status: { illegible: "illegible", reject: "rejected", clear: "" }[action] };
  }
  function record(it, action, typed) {
    const r = decide(it, action, typed);
    if (r.status) reviews.set(it.row, r); else reviews.delete(it.row);
    if (STATIC) { storeStatic(); setSaved("kept in this browser"); return; }
    pendingSaves++;
    setSaved("saving…");
    saving = saving.then(() => fetch("api/review?token=" + encodeURIComponent(token), {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": cfg.csrf },
      body: JSON.stringify({ row: it.row, action: action, value: typed }),
    }).then((resp) => {
      if (!resp.ok) return resp.text().then((t) => { throw new Error(t || resp.statusText); });
      pendingSaves--;
      if (!pendingSaves) setSaved("saved to " + cfg.reviewedName);
    }).catch((e) => {
      pendingSaves--;
      setSaved("NOT SAVED", true);
      showError("Not saved (" + it.file + ", page " + it.page + ", field " + it.field + "): " + e.message);
    }));
  }
  function setSaved(text, failed) { const s = $("saved"); s.textContent = text; s.classList.toggle("failed", !!failed); }
  let errorTimer = 0;
  function showError(text, info) {
    const e = $("error");
    e.textContent = text;
    e.classList.toggle("info", !!info);
    e.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { e.hidden = true; }, info ? 2500 : 8000);
  }

  // ---- the static page's export: the reviewed file, as the server writes it
  function csvCell(s) { return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  function reviewedCsv() {
    const lines = [cfg.columns.concat(["reviewed_value", "reviewed_status"]).map(csvCell).join(",")];
    cfg.rows.forEach((cells, row) => {
      const r = reviews.get(row) || { value: "", status: "" };
      lines.push(cells.concat([r.value, r.status]).map(csvCell).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }
  function download() {
    const url = URL.createObjectURL(new Blob([reviewedCsv()], { type: "text/csv;charset=utf-8" }));
    const a = el("a");
    a.href = url;
    a.download = cfg.reviewedName;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---- images: fetched ahead, so the next item shows at once
  function payload(it) {
    if (!payloads.has(it.row)) {
      const p = STATIC ? Promise.resolve(cfg.payloads[it.row])
        : fetch("api/item?token=" + encodeURIComponent(token) + "&row=" + it.row).then((r) => {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        });
      p.catch(() => payloads.delete(it.row));
      payloads.set(it.row, p);
    }
    return payloads.get(it.row);
  }
  function prefetch() {
    for (let k = 1; k <= 4 && cur + k < order.length; k++) payload(order[cur + k]);
  }

  // ---- filters
  function fillFilter(id, values) {
    const s = $(id);
    [...new Set(values)].filter((v) => v !== "").sort().forEach((v) => s.appendChild(el("option", "", v)).value = v);
    s.closest("label").hidden = s.options.length <= 2 && id !== "filter-reason";
  }
  function applyFilters(keep) {
    const form = $("filter-form").value, field = $("filter-field").value, reason = $("filter-reason").value;
    const open = $("filter-open").checked;
    const was = cur >= 0 ? order[cur] : null;
    order = items.filter((it) => (!form || it.form === form) && (!field || it.field === field)
      && (!reason || it.kind === reason) && (!open || !reviews.has(it.row) || it === was));
    $("shown").textContent = order.length === items.length ? nf.format(items.length) + " in the queue"
      : nf.format(order.length) + " of " + nf.format(items.length) + " shown";
    renderQueue();
    const at = keep && was ? order.indexOf(was) : -1;
    show(at >= 0 ? at : nextOpen(-1, true));
  }

  // ---- moving
  function nextOpen(from, wrap) {
    for (let k = from + 1; k < order.length; k++) if (!reviews.has(order[k].row)) return k;
    if (wrap) for (let k = 0; k <= from && k < order.length; k++) if (!reviews.has(order[k].row)) return k;
    return -1;
  }
  function advance() {
    const k = nextOpen(cur, true);
    if (k === -1) { finished(); return; }
    if (k === cur) { showError("This is the last item not checked.", true); show(k); return; }
    show(k);
  }
  function finished() {
    const d = $("done");
    d.hidden = false;
    d.textContent = order.length ? "Every item shown is checked. " + (STATIC ? "Download the reviewed CSV, then: "
      : "Saved in " + cfg.reviewedName + ". Next: ") + cfg.applyHint : "No item matches the filters.";
    if (!order.length) { cur = -1; renderCurrent(null); }
    renderQueue();
  }

  // ---- drawing
  function pct(p) { return (100 * p).toFixed((p >= 0.995 && p < 1) || p < 0.1 ? 1 : 0) + "%"; }
  function shade(p) {  // a low confidence is a strong red, a sure digit nearly none
    const a = Math.min(0.6, Math.max(0, (1 - p) / 0.25) * 0.6);
    return "rgba(220, 53, 34, " + a.toFixed(3) + ")";
  }
  function drawShades(it) {
    const box = $("shades");
    box.replaceChildren();
    const v = input.value;
    for (let i = 0; i < v.length; i++) {
      const s = el("span");
      const same = it && i < it.value.length && v[i] === it.value[i] && i < it.digits.length;
      s.style.background = same ? shade(it.digits[i]) : "rgba(37, 87, 214, .14)";
      s.title = same ? "confidence " + pct(it.digits[i]) : "typed";
      box.appendChild(s);
    }
  }
  function renderProgress() {
    let checked = 0;
    const tally = { verified: 0, corrected: 0, illegible: 0, rejected: 0 };
    for (const it of items) { const r = reviews.get(it.row); if (r) { checked++; tally[r.status]++; } }
    $("progress-text").textContent = nf.format(checked) + " of " + nf.format(items.length) + " checked";
    $("bar-fill").style.width = (items.length ? 100 * checked / items.length : 0) + "%";
    $("tally").textContent = Object.entries(tally).map(([k, n]) => nf.format(n) + " " + k).join(" · ");
  }
  const MARK = { verified: "✓", corrected: "✎", illegible: "?", rejected: "✕" };
  let lis = [];  // the queue's list items, one per item in order (built when the filters change)
  function renderQueue() {
    const list = $("queue-list");
    lis = order.map((it, k) => {
      const li = el("li");
      li.appendChild(el("span", "mark"));
      li.appendChild(el("span", "v"));
      li.appendChild(el("span", "c", pct(it.confidence)));
      li.title = it.file + " · page " + it.page + " · field " + it.field;
      li.addEventListener("click", () => { show(k); });
      return li;
    });
    list.replaceChildren(...lis);
    lis.forEach((_, k) => queueRow(k));
    renderProgress();
  }
  function queueRow(k) {  // one list item brought up to date
    const li = lis[k], it = order[k];
    if (!li || !it) return;
    const r = reviews.get(it.row);
    li.className = (r ? r.status : "") + (k === cur ? " current" : "");
    li.children[0].textContent = r ? MARK[r.status] : "·";
    li.children[1].textContent = r && r.status === "corrected" ? r.value || "(blank)" : it.value || "–";
  }
  function renderCurrent(it) {
    $("card").classList.toggle("empty", !it);
    const r = it ? reviews.get(it.row) : null;
    $("position").textContent = it ? "Item " + nf.format(cur + 1) + " of " + nf.format(order.length) : "";
    $("where").textContent = it ? it.file + " · page " + it.page + " · field " + it.field + (it.form ? " · form " + it.form : "") : "";
    $("where").title = $("where").textContent;
    const link = $("page-link");
    if (it) link.href = STATIC ? it.pageHref : "page?token=" + encodeURIComponent(token) + "&file=" + encodeURIComponent(it.file) + "&page=" + it.page + "&box=" + it.box.join(",");
    link.hidden = !it;
    $("reason").textContent = it ? it.reason || (it.status === "ok" ? "accepted by the scan" : "low confidence") : "";
    $("reason").classList.toggle("accepted", !!it && it.status === "ok");
    $("confidence").textContent = it ? "confidence " + pct(it.confidence) : "";
    const d = $("decided");
    d.className = "decided" + (r ? " " + r.status : "");
    d.textContent = r ? ({ verified: "✓ verified", corrected: "✎ corrected to " + (r.value || "(blank)"),
      illegible: "? illegible", rejected: "✕ not a digit field" })[r.status] : "";
    $("scan-value").textContent = it ? "read by the scan: " + (it.value || "(blank)") : "";
    input.value = it ? (r && r.status === "corrected" ? r.value : it.value) : "";
    input.disabled = !it;
    drawShades(it);
    $("field-image").removeAttribute("src");
    $("box-outline").hidden = true;
    $("note").textContent = it ? "loading…" : "";
    $("crops").replaceChildren();
  }
  function renderImages(it, p) {
    const img = $("field-image");
    $("note").textContent = p.note || "";
    if (p.image) {
      const [w, h] = p.size;
      const wrap = $("field-wrap");
      const maxH = 220, maxW = $("field-frame").clientWidth - 28;
      wrap.style.width = Math.min(maxW, maxH * w / h, Math.max(w * 2, 200)) + "px";
      img.src = p.image;
      const o = $("box-outline"), [x, y, bw, bh] = p.inner;
      o.style.left = (100 * x / w) + "%"; o.style.top = (100 * y / h) + "%";
      o.style.width = (100 * bw / w) + "%"; o.style.height = (100 * bh / h) + "%";
      o.hidden = false;
    }
    const crops = $("crops");
    crops.replaceChildren();
    if (!p.crops.length) crops.appendChild(el("span", "none", "no digit cuts for this field"));
    p.crops.forEach((c) => {
      const f = el("figure", "crop");
      f.style.margin = "0";
      const ci = el("img");
      ci.src = c.src;
      ci.alt = "cut read as " + c.label;
      f.appendChild(ci);
      const label = el("div", "label", c.label === "reject" ? "✕" : c.label);
      label.style.background = shade(c.confidence);
      f.appendChild(label);
      f.appendChild(el("div", "p", pct(c.confidence)));
      f.title = (c.label === "reject" ? "read as no digit" : "read as " + c.label) + ", " + pct(c.confidence);
      crops.appendChild(f);
    });
  }
  function show(k) {
    $("done").hidden = true;
    const was = cur;
    cur = k;
    const it = k >= 0 ? order[k] : null;
    renderCurrent(it);
    queueRow(was);
    queueRow(k);
    if (lis[k]) lis[k].scrollIntoView({ block: "nearest" });
    renderProgress();
    if (!it) { if (!order.length || nextOpen(-1, true) === -1) finished(); return; }
    input.focus();
    input.select();
    payload(it).then((p) => { if (order[cur] === it) renderImages(it, p); })
      .catch((e) => { if (order[cur] === it) $("note").textContent = "cannot load the images: " + e.message; });
    prefetch();
  }

  // ---- keys: digits go into the box; the rest are commands
  input.addEventListener("input", () => {
    const clean = input.value.replace(/[^0-9]/g, "");
    if (clean !== input.value) input.value = clean;
    drawShades(order[cur]);
  });
  document.addEventListener("keydown", (e) => {
    const it = order[cur];
    if (e.target !== input && ["SELECT", "INPUT"].includes(e.target.tagName)) return;  // the filters keep their keys
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "ArrowUp" || (k === "Tab" && e.shiftKey)) { e.preventDefault(); if (cur > 0) show(cur - 1); return; }
    if (k === "ArrowDown" || k === "Tab") { e.preventDefault(); if (cur + 1 < order.length) show(cur + 1); return; }
    if (!it) return;
    if (e.target !== input) { input.focus(); }
    if (k === "Enter") { e.preventDefault(); record(it, "confirm", input.value); advance(); return; }
    if (k === "Escape") { e.preventDefault(); advance(); return; }
    const lower = k.length === 1 ? k.toLowerCase() : "";
    if (lower === "i") { e.preventDefault(); record(it, "illegible", ""); advance(); return; }
    if (lower === "x") { e.preventDefault(); record(it, "reject", ""); advance(); return; }
    if (lower === "u") { e.preventDefault(); record(it, "clear", ""); show(cur); return; }
    if (k.length === 1 && !/[0-9]/.test(k)) e.preventDefault();  // no letters in a reading
  });
  ["filter-form", "filter-field", "filter-reason", "filter-open"].forEach((id) =>
    $(id).addEventListener("change", () => { applyFilters(true); input.focus(); }));
  window.addEventListener("beforeunload", (e) => { if (pendingSaves) { e.preventDefault(); e.returnValue = ""; } });

  // ---- start: where the person left off (the first unchecked item)
  $("source").textContent = cfg.source;
  $("source").title = cfg.source;
  document.title = "formdigits review · " + cfg.source;
  if (STATIC) { $("export").hidden = false; $("export").addEventListener("click", download); setSaved("kept in this browser"); }
  else setSaved("saved to " + cfg.reviewedName);
  loadState();
  fillFilter("filter-form", items.map((it) => it.form));
  fillFilter("filter-field", items.map((it) => it.field));
  fillFilter("filter-reason", items.map((it) => it.kind));
  applyFilters(false);
  window.formdigitsReview = { reviewedCsv: reviewedCsv, order: () => order.map((it) => it.row), current: () => order[cur] };
})();
