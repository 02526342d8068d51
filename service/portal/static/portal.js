// The student portal's script. The pages work without it (plain forms); with it: drag-and-drop upload with the
// server's messages shown in place, drafts saved while typing, and a submission's status followed without
// reloading. Nothing here is inline: the Content-Security-Policy allows only this site's files.
"use strict";

const csrf = () => document.querySelector("input[name=csrf_token]")?.value || "";

async function problem(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (_) { /* not JSON */ }
  if (response.status === 413) return "The file is too large: submit only your Python source.";
  return `The server answered ${response.status}; try again in a moment.`;
}

// -- upload: button or drop ---------------------------------------------------------------------------------------
function setUpUpload(form) {
  const input = form.querySelector("input[type=file]");
  const drop = form.querySelector(".drop");
  const chosen = form.querySelector("#chosen");
  const error = form.querySelector("#upload-error");
  const button = form.querySelector("button[type=submit]");
  const maxBytes = Number(form.dataset.maxBytes || 0);
  const show = (message) => { error.textContent = message; error.hidden = !message; };
  const describe = () => {
    const file = input.files[0];
    chosen.textContent = file ? `${file.name} (${file.size.toLocaleString()} bytes)` : "";
    show("");
  };
  input.addEventListener("change", describe);
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer.files.length) return;
    if (e.dataTransfer.files.length > 1) { show("Drop one file: your solution is one .py file."); return; }
    input.files = e.dataTransfer.files;
    describe();
    form.requestSubmit();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = input.files[0];
    if (!file) { show("Choose your .py file first (or drop it on the box)."); return; }
    if (maxBytes && file.size > maxBytes) {
      show(`The file is larger than ${maxBytes.toLocaleString()} bytes: submit only your Python source (no data, no weights).`);
      return;
    }
    button.disabled = true;
    button.textContent = "Uploading…";
    try {
      const response = await fetch(form.getAttribute("action"), {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf() },
      });
      if (response.ok) {
        const body = await response.json();
        window.location.assign(body.url);
        return;
      }
      show(await problem(response));
    } catch (_) {
      show("The upload did not reach the server: check your connection and try again.");
    }
    button.disabled = false;
    button.textContent = "Submit for grading";
  });
}

// -- written answers: drafts saved while typing ------------------------------------------------------------------
function setUpAnswers(form) {
  const note = form.querySelector("#autosave");
  let timer = null;
  let dirty = new Set();
  const save = async () => {
    timer = null;
    if (!dirty.size) return;
    const body = new FormData();
    body.append("csrf_token", csrf());
    for (const area of dirty) body.append(area.name, area.value);
    dirty = new Set();
    note.textContent = "Saving draft…";
    try {
      const response = await fetch(form.getAttribute("action"), {
        method: "POST", body, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf() },
      });
      note.textContent = response.ok
        ? `Draft saved at ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} (not submitted yet).`
        : await problem(response);
    } catch (_) {
      note.textContent = "The draft could not be saved: check your connection (your text stays in this page).";
    }
  };
  form.addEventListener("input", (e) => {
    if (e.target.tagName !== "TEXTAREA") return;
    dirty.add(e.target);
    note.textContent = "Unsaved changes…";
    if (timer) clearTimeout(timer);
    timer = setTimeout(save, 1200);
  });
  form.addEventListener("focusout", () => { if (timer) { clearTimeout(timer); save(); } });
  form.addEventListener("keydown", (e) => {  // Ctrl+S saves the draft now
    if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); if (timer) clearTimeout(timer); save(); }
  });
}

// -- a submission's status, followed without reloading -----------------------------------------------------------
function follow(card) {
  const url = card.dataset.statusUrl;
  const bar = card.querySelector("#progress");
  const step = card.querySelector("#step");
  const badge = card.querySelector(".badge");
  const words = { queued: "waiting", running: "grading", done: "graded", failed: "not graded" };
  let last = null;
  const poll = async () => {
    try {
      const response = await fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const s = await response.json();
        if (!s.live) { window.location.reload(); return; }  // graded or failed: the page shows the result
        if (bar && s.progress >= (last ?? 0)) { bar.value = s.progress; last = s.progress; }
        if (badge) { badge.textContent = words[s.status]; badge.className = `badge ${s.status}`; }
        if (step) {
          step.textContent = s.status === "queued"
            ? (s.queue_position ? `number ${s.queue_position} in the queue` : "waiting for a grader")
            : (s.step || "starting");
        }
      }
    } catch (_) { /* the next poll tries again */ }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  const upload = document.querySelector("form#upload");
  if (upload) setUpUpload(upload);
  const answers = document.querySelector("form[data-autosave]");
  if (answers) setUpAnswers(answers);
  const live = document.querySelector("[data-live][data-status-url]");
  if (live) follow(live);
});
