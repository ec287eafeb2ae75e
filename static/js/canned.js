// Canned replies in the reply box: type "/" (at the start or after a space) and then part of
// a shortcut or title; a list of matching replies opens above the box, filtered as you type.
// Arrow keys move, Enter or Tab inserts the highlighted one (its variables already filled in
// for this conversation by the server), Escape closes. Click works too.
// Data: GET /api/v1/canned-replies/?q=&conversation= (session auth). No inline script (CSP).
(function () {
  "use strict";

  const pane = document.getElementById("conversation");
  if (!pane || !pane.dataset.cannedUrl) return;
  const TRIGGER = /(^|\s)\/([\w-]*)$/u;
  let popup = null;
  let items = [];
  let active = 0;
  let token = null; // {field, start, end} of the "/query" being replaced
  let pending = null;
  let requestId = 0;

  function textarea(target) {
    return target && target.matches && target.matches("#reply-box textarea[name=body]")
      ? target
      : null;
  }

  function close() {
    if (popup) popup.remove();
    popup = null;
    items = [];
    token = null;
    const field = document.querySelector("#reply-box textarea[name=body]");
    if (field) field.removeAttribute("aria-activedescendant");
  }

  function render(field) {
    if (!popup) {
      popup = document.createElement("ul");
      popup.className = "canned-popup";
      popup.id = "canned-popup";
      popup.setAttribute("role", "listbox");
      popup.setAttribute("aria-label", gettext("Canned replies"));
      field.closest(".reply-field").appendChild(popup);
      popup.addEventListener("mousedown", (event) => {
        const li = event.target.closest("[data-index]");
        if (!li) return;
        event.preventDefault(); // keep the focus in the text box
        pick(Number(li.dataset.index));
      });
    }
    popup.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "canned-empty";
      li.textContent = gettext("No canned reply matches.");
      popup.appendChild(li);
      return;
    }
    items.forEach((item, index) => {
      const li = document.createElement("li");
      li.id = `canned-option-${index}`;
      li.dataset.index = String(index);
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", index === active ? "true" : "false");
      li.className = index === active ? "canned-option is-active" : "canned-option";
      const head = document.createElement("span");
      head.className = "canned-option-head";
      const shortcut = document.createElement("span");
      shortcut.className = "mono";
      shortcut.textContent = `/${item.shortcut}`;
      const title = document.createElement("span");
      title.textContent = item.title;
      head.append(shortcut, " ", title);
      const preview = document.createElement("span");
      preview.className = "canned-option-preview muted";
      preview.textContent = item.rendered ?? item.body;
      li.append(head, preview);
      popup.appendChild(li);
    });
    field.setAttribute("aria-activedescendant", `canned-option-${active}`);
    const current = popup.querySelector(".is-active");
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function search(field, query) {
    const id = ++requestId;
    const url = new URL(pane.dataset.cannedUrl, window.location.origin);
    url.searchParams.set("q", query);
    url.searchParams.set("conversation", pane.dataset.conversationId);
    url.searchParams.set("page_size", "20");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : { results: [] }))
      .then((data) => {
        if (id !== requestId || !token) return; // a newer search, or closed meanwhile
        items = data.results || [];
        active = 0;
        render(field);
      })
      .catch(() => close());
  }

  function pick(index) {
    const item = items[index];
    if (!item || !token) return;
    const { field, start, end } = token;
    const text = item.rendered ?? item.body;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    const caret = start + text.length;
    field.setSelectionRange(caret, caret);
    close();
    field.focus();
  }

  document.addEventListener("input", (event) => {
    const field = textarea(event.target);
    if (!field) return;
    const before = field.value.slice(0, field.selectionStart);
    const match = TRIGGER.exec(before);
    if (!match) {
      close();
      return;
    }
    token = { field, start: before.length - match[2].length - 1, end: field.selectionStart };
    clearTimeout(pending);
    pending = setTimeout(() => search(field, match[2]), 120);
  });

  // Capture phase: runs before inbox.js's Enter-sends handler, and stops it while the list
  // is open (Enter then inserts the reply instead of sending).
  document.addEventListener(
    "keydown",
    (event) => {
      if (!popup || !textarea(event.target) || event.isComposing) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (!items.length) return;
        const step = event.key === "ArrowDown" ? 1 : -1;
        active = (active + step + items.length) % items.length;
        render(event.target);
      } else if ((event.key === "Enter" || event.key === "Tab") && items.length) {
        pick(active);
      } else if (event.key === "Escape") {
        close();
      } else {
        return;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
    },
    true,
  );

  document.addEventListener("focusout", (event) => {
    if (textarea(event.target)) setTimeout(close, 150);
  });
  // The reply box is swapped after a send: a list of the old box goes with it.
  document.addEventListener("htmx:afterSwap", () => {
    if (popup && !popup.isConnected) close();
  });
})();
