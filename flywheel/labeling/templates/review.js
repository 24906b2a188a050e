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
  let showingDone = false;  // the "batch complete" view instead of an item
  let expanded = false;     // earlier turns of the current item's conversation shown
  const KEEP_TURNS = 3;     // a long conversation shows its last turns (and the system prompt) at first
  const moreBtn = $("more-btn"); // moved into the conversation between the system prompt and the turns

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

    renderConversation(it.messages || []);
    $("output").textContent = it.output;
    const hasCorrection = Boolean(it.correction_text);
    $("correction-card").hidden = !hasCorrection;
    $("correction").textContent = hasCorrection ? it.correction_text : "";

    const d = mine[it.item_id];
    const banner = $("verdict-banner");
    for (const v of ["pass", "fix", "reject"]) $(v + "-btn").classList.toggle("chosen", Boolean(d && d.verdict === v));
    const myFix = Boolean(d && d.verdict === "fix" && d.text);
    $("my-fix-card").hidden = !myFix;
    $("my-fix").textContent = myFix ? d.text : "";
    if (d) {
      banner.hidden = false;
      banner.className = "verdict-banner " + d.verdict;
      let text = "Your verdict: " + VERDICT_LABEL[d.verdict];
      if (d.verdict === "reject" && d.reason) text += " — " + d.reason;
      banner.textContent = text;
    } else if (decidedByAnyone.has(it.item_id)) {
      banner.hidden = false;
      banner.className = "verdict-banner other";
      banner.textContent = "Another reviewer has decided this item; your verdict is a second opinion.";
    } else {
      banner.hidden = true;
    }
    closeEditors();
    setStatus("");
  }

  function message(m) {
    const box = document.createElement("div");
    box.className = "msg " + m.role;
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = m.role;
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = m.content;
    box.append(role, content);
    return box;
  }

  // system prompt + the last messages; the earlier ones behind a button (E)
  function renderConversation(messages) {
    const conv = $("conversation");
    conv.replaceChildren();
    const system = messages.filter((m) => m.role === "system");
    const turns = messages.filter((m) => m.role !== "system");
    const hidden = expanded ? 0 : Math.max(0, turns.length - KEEP_TURNS);
    $("turns").textContent = turns.length > 1 ? "(" + turns.length + " messages)" : "";
    for (const m of system) conv.appendChild(message(m));
    const more = moreBtn;
    more.hidden = turns.length <= KEEP_TURNS;
    more.textContent = hidden ? "Show " + hidden + " earlier " + (hidden === 1 ? "message" : "messages") + " (E)" : "Hide the earlier messages (E)";
    if (!more.hidden) conv.appendChild(more);
    for (const m of turns.slice(hidden)) conv.appendChild(message(m));
  }

  function toggleEarlier() {
    if (showingDone || !items.length) return;
    expanded = !expanded;
    renderConversation(items[index].messages || []);
  }

  function closeEditors() {
    $("fix-editor").hidden = true;
    $("reject-editor").hidden = true;
    $("main").classList.remove("editing");
    if (mode === "fix" || mode === "reject") mode = "view";
  }

  function showItemView() {
    showingDone = false;
    $("done-card").hidden = true;
    $("item-view").hidden = false;
  }

  function go(i) {
    if (!items.length) return;
    const k = Math.max(0, Math.min(items.length - 1, i));
    if (k !== index || showingDone) expanded = false;
    index = k;
    showItemView();
    render();
    window.scrollTo({ top: 0 });
  }

  // the first item at or after `from` (wrapping around) that passes `test`, or -1
  function findFrom(from, test) {
    for (let n = 0; n < items.length; n++) {
      const k = (from + n) % items.length;
      if (test(items[k])) return k;
    }
    return -1;
  }
  const undecided = (it) => !mine[it.item_id] && !decidedByAnyone.has(it.item_id);
  const notMine = (it) => !mine[it.item_id];

  function batchComplete() {
    return Boolean(progress && progress.items && progress.decided >= progress.items);
  }

  function showDone() {
    closeEditors();
    showingDone = true;
    $("item-view").hidden = true;
    $("done-card").hidden = false;
    const counts = { pass: 0, fix: 0, reject: 0 };
    for (const d of Object.values(mine)) counts[d.verdict] += 1;
    const own = counts.pass + counts.fix + counts.reject;
    $("done-summary").textContent = "Every one of the " + items.length + " items has a decision. " +
      (own ? "Yours: " + own + " (" + counts.pass + " passed, " + counts.fix + " fixed, " + counts.reject + " rejected)." :
        "You have not decided any item of this batch yourself.");
    const left = items.filter(notMine).length;
    const second = $("second-btn");
    second.hidden = left === 0;
    second.textContent = "Give a second opinion on the " + left + " " + (left === 1 ? "item" : "items") + " others decided";
    setStatus("");
    window.scrollTo({ top: 0 });
    $("back-btn").focus();
  }

  // where to go after a decision on item `pos`: the next item nobody has decided; in a second-opinion
  // pass (the item had someone else's verdict), the next item without one of mine; else the done view
  function advance(pos, secondOpinion) {
    let k = findFrom(pos + 1, undecided);
    if (k < 0 && secondOpinion) k = findFrom(pos + 1, notMine);
    if (k >= 0) go(k);
    else if (batchComplete()) showDone();
    else render();
  }

  function decide(verdict, text, reason) {
    if (!reviewer) { askName(); return; }
    const it = items[index];
    const pos = index;
    const secondOpinion = decidedByAnyone.has(it.item_id) && !mine[it.item_id];
    closeEditors();
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    setStatus("Saving…");
    api("api/decision", {
      method: "POST",
      body: JSON.stringify({ item_id: it.item_id, verdict: verdict, text: text, reason: reason, reviewer: reviewer }),
    }).then((data) => {
      mine[it.item_id] = { verdict: data.decision.verdict, text: data.decision.text, reason: data.decision.reason };
      decidedByAnyone = new Set(data.decided);
      progress = data.progress;
      renderProgress();
      // move on only when the reviewer is still on the item just decided
      if (index === pos && !showingDone) advance(pos, secondOpinion); else if (!showingDone) render();
      if (!showingDone) setStatus(VERDICT_LABEL[verdict] + " item " + (pos + 1) + ".");
    }).catch((err) => {
      if (index === pos && verdict === "fix") { openFix(); $("fix-text").value = text; }
      if (index === pos && verdict === "reject") { openReject(); $("reject-reason").value = reason || ""; }
      setStatus("Not saved: " + err.message, true);
    });
  }

  // the fix editor grows with its text (up to most of the window) instead of scrolling inside 8 rows
  function fitEditor() {
    const ta = $("fix-text");
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight + 4, Math.max(200, window.innerHeight * 0.65)) + "px";
  }

  function openFix() {
    if (showingDone || !items.length) return;
    const it = items[index];
    const d = mine[it.item_id];
    $("reject-editor").hidden = true;
    $("fix-editor").hidden = false;
    $("main").classList.add("editing");
    const ta = $("fix-text");
    // a user's correction may hold NUL characters, which no fix may store: the draft leaves them out
    ta.value = d && d.verdict === "fix" && d.text ? d.text : (it.correction_text || it.output || "").replace(/\u0000/g, "");
    mode = "fix";
    fitEditor();
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
    $("fix-editor").scrollIntoView({ block: "nearest" });
  }

  function saveFix() {
    const text = $("fix-text").value;
    if (!text.trim()) { setStatus("A fix needs the corrected answer.", true); return; }
    decide("fix", text, null);
  }

  function openReject() {
    if (showingDone || !items.length) return;
    const d = mine[items[index].item_id];
    $("fix-editor").hidden = true;
    $("reject-editor").hidden = false;
    $("main").classList.add("editing");
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
        const k = findFrom(0, undecided);
        if (k >= 0) go(k);
        else if (batchComplete()) showDone();
        else go(0);
      } else {
        render();
      }
    }).catch((err) => setStatus(err.message, true));
  }

  // buttons
  $("pass-btn").addEventListener("click", () => decide("pass", null, null));
  moreBtn.addEventListener("click", toggleEarlier);
  $("fix-text").addEventListener("input", fitEditor);
  $("back-btn").addEventListener("click", () => go(index));
  $("second-btn").addEventListener("click", () => { const k = findFrom(0, notMine); go(k >= 0 ? k : 0); });
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
    if (showingDone && (key === "p" || key === "P" || key === "f" || key === "F" || key === "r" || key === "R")) return;
    if (key === "p" || key === "P") { e.preventDefault(); decide("pass", null, null); }
    else if (key === "f" || key === "F") { e.preventDefault(); openFix(); }
    else if (key === "r" || key === "R") { e.preventDefault(); openReject(); }
    else if (key === "j" || key === "ArrowRight") { e.preventDefault(); go(showingDone ? index : index + 1); }
    else if (key === "k" || key === "ArrowLeft") { e.preventDefault(); go(showingDone ? index : index - 1); }
    else if (key === "e" || key === "E") { e.preventDefault(); toggleEarlier(); }
    else if (key === "u" || key === "U") {
      e.preventDefault();
      const k = findFrom(showingDone ? 0 : index + 1, undecided);
      if (k >= 0) go(k); else setStatus("No item is waiting for a decision.");
    }
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
