// rockit-edge console: the few live parts of server-rendered pages. No framework; nothing
// here sees a token (the session lives in HttpOnly cookies).
"use strict";

// Parts marked data-live="URL" are refreshed from URL every data-interval ms (default
// 2000) while the page is visible; a part stops when its answer says data-final.
function live(el) {
  const url = el.dataset.live;
  const every = Number(el.dataset.interval || 2000);
  let last = el.innerHTML;
  async function tick() {
    if (document.hidden) { return setTimeout(tick, every); }
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { "accept": "text/html" } });
      if (r.redirected || r.status === 401) { location.reload(); return; }
      if (r.ok) {
        const html = await r.text();
        if (html !== last) { el.innerHTML = html; last = html; }
      }
    } catch (e) { /* the server is restarting: try again */ }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

// Buttons marked data-copy="ID" copy the text of element ID.
function copier(btn) {
  btn.addEventListener("click", async () => {
    const el = document.getElementById(btn.dataset.copy);
    if (!el) { return; }
    try {
      await navigator.clipboard.writeText(el.textContent.trim());
      btn.textContent = "Copied";
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents(el);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  });
}

// Forms marked data-confirm="question" ask before they are sent.
function confirmer(form) {
  form.addEventListener("submit", (ev) => {
    if (!confirm(form.dataset.confirm)) { ev.preventDefault(); }
  });
}

// File inputs marked data-fill="ID" put the chosen file's text into the textarea ID.
function filler(input) {
  input.addEventListener("change", async () => {
    const target = document.getElementById(input.dataset.fill);
    if (target && input.files.length) { target.value = await input.files[0].text(); }
  });
}

// The upload form (data-upload="URL"): asks URL for an import, then sends the picked or
// dropped file to the upload path it answers, showing the progress.
function uploader(form) {
  const file = form.querySelector("input[type=file]");
  const bar = form.querySelector("progress");
  const status = form.querySelector("[role=status]");
  const drop = form.querySelector(".drop");
  if (drop) {
    drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      if (ev.dataTransfer.files.length) { file.files = ev.dataTransfer.files; }
    });
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) { return; }
    const body = new URLSearchParams();
    body.set("_csrf", form.querySelector("input[name=_csrf]").value);
    body.set("build_name", form.querySelector("input[name=build_name]").value);
    body.set("size", String(f.size));
    status.textContent = "starting the import…";
    const r = await fetch(form.dataset.upload, { method: "POST", body, credentials: "same-origin" });
    if (!r.ok) {
      const page = new DOMParser().parseFromString(await r.text(), "text/html");
      const e = page.getElementById("error");
      status.textContent = "refused: " + (e ? e.textContent.trim() : r.status);
      return;
    }
    const imp = await r.json();
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", imp.uploadPath);
    xhr.upload.addEventListener("progress", (p) => {
      if (p.lengthComputable) {
        bar.value = Math.round(p.loaded * 100 / p.total);
        status.textContent = bar.value + " % sent";
      }
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 200) {
        bar.value = 100;
        status.textContent = "uploaded: the pipeline below takes it from here";
      } else {
        status.textContent = "the upload failed (" + xhr.status + "): " + xhr.responseText;
      }
    });
    xhr.addEventListener("error", () => { status.textContent = "the upload was cut off; try again"; });
    status.textContent = "0 % sent";
    xhr.send(f);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("[data-copy]").forEach(copier);
  document.querySelectorAll("form[data-confirm]").forEach(confirmer);
  document.querySelectorAll("input[data-fill]").forEach(filler);
  document.querySelectorAll("form[data-upload]").forEach(uploader);
});
