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

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("[data-copy]").forEach(copier);
  document.querySelectorAll("form[data-confirm]").forEach(confirmer);
  document.querySelectorAll("input[data-fill]").forEach(filler);
});
