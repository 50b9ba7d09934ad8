// strata web UI: copy buttons and search-as-you-type. Everything also works without this file.
// Values from the server are only ever set as text (textContent), never as HTML.
"use strict";

function copy(text, button) {
  const done = () => { const was = button.textContent; button.textContent = "Copied"; setTimeout(() => { button.textContent = was; }, 1500); };
  const fallback = () => {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-10000px";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
}

function size(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n / 1024, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return value.toFixed(1) + " " + units[unit];
}

function cell(row, text) {
  const td = document.createElement("td");
  if (text instanceof Node) td.appendChild(text); else td.textContent = text;
  row.appendChild(td);
}

function searchAsYouType() {
  const input = document.getElementById("q");
  const table = document.getElementById("repositories");
  if (!input || !table) return;
  let timer = null, asked = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value, mine = ++asked;
      const response = await fetch("/ui/api/repositories?q=" + encodeURIComponent(q), { credentials: "same-origin" });
      if (!response.ok || mine !== asked) return;
      const page = await response.json();
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const r of page.repositories) {
        const row = document.createElement("tr");
        const a = document.createElement("a");
        a.href = "/ui/r/" + r.name;
        a.textContent = r.name;
        cell(row, a);
        cell(row, String(r.tags) + (r.more_tags ? "+" : ""));
        cell(row, r.last_push || "—");
        cell(row, size(r.size));
        body.appendChild(row);
      }
      history.replaceState(null, "", "/ui/?q=" + encodeURIComponent(q));
    }, 200);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copy(button.dataset.copy, button));
  }
  searchAsYouType();
});
