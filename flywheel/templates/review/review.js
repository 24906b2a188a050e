// flywheel review page. Every piece of batch text is written with textContent (never innerHTML).
(function () {
  "use strict";
  const body = document.body;
  const TOKEN = body.dataset.token;
  const NAME_KEY = "flywheel.reviewer";
  const items = JSON.parse(document.getElementById("items-data").textContent);
  const $ = (id) => document.getElementById(id);
  const VERDICT_LABEL = { pass: "Passed", fix: "Fixed", reject: "Rejected" };
  const KIND_LABEL = {
    correction: "user correction", negative: "negative signal", low_confidence: "low confidence",
    control: "control sample", sample: "sample",
  };

  let index = 0;
  let reviewer = body.dataset.defaultReviewer || localStorage.getItem(NAME_KEY) || "";
  let mine = {};            // item_id -> {verdict, text, reason} of this reviewer
  let decidedByAnyone = new Set();
  let progress = null;
  let mode = "view";        // view | fix | reject | help | name

  function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers["X-Review-Token"] = TOKEN;
    if (opts.body) opts.headers["Content-Type"] = "application/json";
    return fetch(path, opts).then(async (r) => {
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error || ("request failed: " + r.status));
      return data;
    });
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", Boolean(isError));
  }

  function chip(text, cls) {
    const el = document.createElement("span");
    el.className = "chip" + (cls ? " " + cls : "");
    el.textContent = text;
    return el;
  }

  function renderProgress() {
    if (!progress) return;
    $("progress-text").textContent = progress.decided + " of " + progress.items + " decided";
    const pct = progress.items ? (100 * progress.decided) / progress.items : 0;
    $("bar-fill").style.width = pct.toFixed(1) + "%";
    document.querySelector(".bar").setAttribute("aria-valuenow", String(progress.decided));
  }

  function render() {
    if (!items.length) return;
    const it = items[index];
    $("item-pos").textContent = String(index + 1);
    $("prev-btn").disabled = index === 0;
    $("next-btn").disabled = index === items.length - 1;

    const chips = $("chips");
    chips.replaceChildren();
    chips.appendChild(chip(KIND_LABEL[it.kind] || it.kind, it.kind));
    if (it.signal && it.signal !== "none" && it.signal !== it.kind) chips.appendChild(chip("signal: " + it.signal, it.signal));
    if (it.evidence && it.evidence !== it.kind && it.evidence !== it.signal) chips.appendChild(chip(it.evidence));
    if (it.confidence !== null && it.confidence !== undefined) chips.appendChild(chip("confidence " + Number(it.confidence).toFixed(2)));
    if (it.duplicate_count > 1) chips.appendChild(chip("×" + it.duplicate_count + " similar"));

    const conv = $("conversation");
    conv.replaceChildren();
    for (const m of it.messages || []) {
      const box = document.createElement("div");
      box.className = "msg " + m.role;
      const role = document.createElement("span");
      role.className = "role";
      role.textContent = m.role;
      const content = document.createElement("div");
      content.className = "content";
      content.textContent = m.content;
      box.append(role, content);
      conv.appendChild(box);
    }
    $("output").textContent = it.output;
    const hasCorrection = Boolean(it.correction_text);
    $("correction-card").hidden = !hasCorrection;
    $("correction").textContent = hasCorrection ? it.correction_text : "";

    const d = mine[it.item_id];
    const banner = $("verdict-banner");
    for (const v of ["pass", "fix", "reject"]) $(v + "-btn").classList.toggle("chosen", Boolean(d && d.verdict === v));
    if (d) {
      banner.hidden = false;
      banner.className = "verdict-banner " + d.verdict;
      let text = "Your verdict: " + VERDICT_LABEL[d.verdict];
      if (d.verdict === "fix" && d.text) text += " — your answer: " + d.text;
      if (d.verdict === "reject" && d.reason) text += " — " + d.reason;
      banner.textContent = text;
    } else if (progress && progress.items && progress.decided >= progress.items) {
      banner.hidden = false;
      banner.className = "verdict-banner done";
      banner.textContent = "Every item of this batch has a decision. You can still review or change yours.";
    } else {
      banner.hidden = true;
    }
    closeEditors();
    setStatus("");
  }

  function closeEditors() {
    $("fix-editor").hidden = true;
    $("reject-editor").hidden = true;
    if (mode === "fix" || mode === "reject") mode = "view";
  }

  function go(i) {
    if (!items.length) return;
    index = Math.max(0, Math.min(items.length - 1, i));
    render();
    window.scrollTo({ top: 0 });
  }

  function nextUndecided(from) {
    for (let k = from; k < items.length; k++) if (!mine[items[k].item_id] && !decidedByAnyone.has(items[k].item_id)) return k;
    for (let k = 0; k < items.length; k++) if (!mine[items[k].item_id] && !decidedByAnyone.has(items[k].item_id)) return k;
    for (let k = from; k < items.length; k++) if (!mine[items[k].item_id]) return k;
    return -1;
  }

  function decide(verdict, text, reason) {
    if (!reviewer) { askName(); return; }
    const it = items[index];
    const pos = index;
    closeEditors();
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    setStatus("Saving…");
    api("api/decision", {
      method: "POST",
      body: JSON.stringify({ item_id: it.item_id, verdict: verdict, text: text, reason: reason, reviewer: reviewer }),
    }).then((data) => {
      mine[it.item_id] = { verdict: data.decision.verdict, text: data.decision.text, reason: data.decision.reason };
      decidedByAnyone.add(it.item_id);
      progress = data.progress;
      renderProgress();
      // move on only when the reviewer is still on the item just decided
      if (index === pos && pos + 1 < items.length) go(pos + 1); else render();
      setStatus(VERDICT_LABEL[verdict] + " item " + (pos + 1) + ".");
    }).catch((err) => {
      if (index === pos && verdict === "fix") { openFix(); $("fix-text").value = text; }
      if (index === pos && verdict === "reject") { openReject(); $("reject-reason").value = reason || ""; }
      setStatus("Not saved: " + err.message, true);
    });
  }

  function openFix() {
    const it = items[index];
    const d = mine[it.item_id];
    $("reject-editor").hidden = true;
    $("fix-editor").hidden = false;
    const ta = $("fix-text");
    ta.value = d && d.verdict === "fix" && d.text ? d.text : (it.correction_text || it.output || "");
    mode = "fix";
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }

  function saveFix() {
    const text = $("fix-text").value;
    if (!text.trim()) { setStatus("A fix needs the corrected answer.", true); return; }
    decide("fix", text, null);
  }

  function openReject() {
    const d = mine[items[index].item_id];
    $("fix-editor").hidden = true;
    $("reject-editor").hidden = false;
    $("reject-reason").value = d && d.verdict === "reject" && d.reason ? d.reason : "";
    mode = "reject";
    $("reject-reason").focus();
  }

  function saveReject() {
    decide("reject", null, $("reject-reason").value.trim() || null);
  }

  function showHelp(show) {
    $("help").hidden = !show;
    mode = show ? "help" : "view";
    if (show) $("help-close").focus();
  }

  function askName() {
    $("name-dialog").hidden = false;
    mode = "name";
    $("name-input").value = reviewer;
    $("name-input").focus();
  }

  function setReviewer(name) {
    reviewer = name.trim();
    localStorage.setItem(NAME_KEY, reviewer);
    $("reviewer-name").textContent = reviewer;
    $("name-dialog").hidden = true;
    mode = "view";
    return loadState(true);
  }

  function loadState(jump) {
    return api("api/state?reviewer=" + encodeURIComponent(reviewer)).then((data) => {
      mine = data.mine;
      decidedByAnyone = new Set(data.decided);
      progress = data.progress;
      renderProgress();
      if (jump) {
        const k = nextUndecided(0);
        go(k >= 0 ? k : 0);
      } else {
        render();
      }
    }).catch((err) => setStatus(err.message, true));
  }

  // buttons
  $("pass-btn").addEventListener("click", () => decide("pass", null, null));
  $("fix-btn").addEventListener("click", openFix);
  $("reject-btn").addEventListener("click", openReject);
  $("fix-save").addEventListener("click", saveFix);
  $("fix-cancel").addEventListener("click", closeEditors);
  $("reject-save").addEventListener("click", saveReject);
  $("reject-cancel").addEventListener("click", closeEditors);
  $("prev-btn").addEventListener("click", () => go(index - 1));
  $("next-btn").addEventListener("click", () => go(index + 1));
  $("help-btn").addEventListener("click", () => showHelp(true));
  $("help-close").addEventListener("click", () => showHelp(false));
  $("reviewer-btn").addEventListener("click", askName);
  $("name-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("name-input").value.trim()) setReviewer($("name-input").value);
  });

  // keyboard
  document.addEventListener("keydown", (e) => {
    if (mode === "name") return;
    if (mode === "help") {
      if (e.key === "Escape" || e.key === "?") { e.preventDefault(); showHelp(false); }
      return;
    }
    if (mode === "fix") {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveFix(); }
      else if (e.key === "Escape") { e.preventDefault(); closeEditors(); }
      return;
    }
    if (mode === "reject") {
      if (e.key === "Enter") { e.preventDefault(); saveReject(); }
      else if (e.key === "Escape") { e.preventDefault(); closeEditors(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA") return;
    const key = e.key;
    if (key === "p" || key === "P") { e.preventDefault(); decide("pass", null, null); }
    else if (key === "f" || key === "F") { e.preventDefault(); openFix(); }
    else if (key === "r" || key === "R") { e.preventDefault(); openReject(); }
    else if (key === "j" || key === "ArrowRight") { e.preventDefault(); go(index + 1); }
    else if (key === "k" || key === "ArrowLeft") { e.preventDefault(); go(index - 1); }
    else if (key === "?") { e.preventDefault(); showHelp(true); }
  });

  // start
  if (reviewer) {
    localStorage.setItem(NAME_KEY, reviewer);
    $("reviewer-name").textContent = reviewer;
    loadState(true);
  } else {
    render();
    askName();
  }
})();
