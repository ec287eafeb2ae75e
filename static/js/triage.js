// Switchboard inbox, the agent's tools: saved views with live counts, bulk selection, labels
// kept live, the contact panel toggle and keyboard shortcuts. No HTML is built here: pieces
// are fetched from the server (the saved views list) or already in the page (the help dialog).
//
// Shortcuts (never while typing in a field, never with Ctrl/Alt/Meta):
//   j / k      next / previous conversation in the list     Enter / o  open it
//   r          focus the reply box                          n          note mode, then reply box
//   /          focus the reply box and type "/"             ?          the help dialog
(function () {
  "use strict";

  const byId = (id) => document.getElementById(id);
  const VIEW_FILTERS = ["status", "label", "assigned", "platform", "unread"];
  const DEFAULT_STATUS = "open";

  function inbox() {
    return (window.Switchboard && window.Switchboard.inbox) || null;
  }

  // Runs `task` at most once per `delay` ms, after the last call (a burst costs one request).
  function debounced(task, delay) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(() => {
        Promise.resolve(task()).catch((err) => console.warn("triage: refresh failed", err));
      }, delay);
    };
  }

  // ---------------------------------------------------------------- saved views

  // The current filters as the server writes a view's query (keys in VIEW_FILTERS order).
  function currentQuery() {
    const form = byId("inbox-filters");
    if (!form) return "";
    const data = new FormData(form);
    if ((data.get("q") || "").trim()) return ""; // searching: no view is the current one
    const params = new URLSearchParams();
    for (const key of VIEW_FILTERS) {
      let value = data.get(key) || "";
      if (key === "status") value = value || DEFAULT_STATUS;
      if (value) params.append(key, value);
    }
    return params.toString();
  }

  const refreshViews = debounced(async function () {
    const nav = byId("saved-views");
    if (!nav) return;
    const url = nav.dataset.url + "?current=" + encodeURIComponent(currentQuery());
    const response = await fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    nav.innerHTML = await response.text();
  }, 1500); // one aggregate query per refresh, at most every 1.5 s per open inbox in a burst

  // "Save view" takes the filters shown now (htmx changes them without reloading the page).
  const saveForm = byId("save-view-form");
  const filterForm = byId("inbox-filters");
  if (saveForm && filterForm) {
    saveForm.addEventListener("submit", () => {
      const data = new FormData(filterForm);
      for (const key of VIEW_FILTERS) {
        const field = saveForm.querySelector('input[type="hidden"][name="' + key + '"]');
        if (field) field.value = data.get(key) || "";
      }
    });
    filterForm.addEventListener("change", refreshViews);
  }

  // ---------------------------------------------------------------- bulk selection

  const selected = new Set();
  const bulkForm = byId("bulk-form");
  // "Select all": every conversation of the filtered list, on every page (the server finds
  // them from the filters, `allFilters`); `selected` is not used meanwhile.
  let allMode = false;
  let allFilters = "";

  // How many conversations the list shows, over all its pages (the list partial says it).
  function listTotal() {
    const list = byId("conversation-list");
    return list ? parseInt(list.dataset.total || "0", 10) || 0 : 0;
  }

  function filterQuery() {
    const form = byId("inbox-filters");
    const params = new URLSearchParams();
    if (form) {
      for (const [key, value] of new FormData(form)) {
        if (typeof value === "string" && value.trim()) params.append(key, value);
      }
    }
    return params.toString();
  }

  function fill(element, count) {
    element.textContent = (element.dataset.template || "%(count)s").replace("%(count)s", count);
  }

  function syncBulk() {
    if (!bulkForm) return;
    document.querySelectorAll("#conversation-list .conv-select").forEach((box) => {
      box.checked = allMode || selected.has(box.value);
    });
    bulkForm.hidden = !allMode && selected.size === 0;
    const count = bulkForm.querySelector('[data-role="bulk-count"]');
    if (count) {
      if (allMode) {
        count.textContent = (count.dataset.templateAll || "%(count)s").replace("%(count)s", listTotal());
      } else {
        fill(count, selected.size);
      }
    }
    const all = bulkForm.querySelector('[data-action="bulk-select-all"]');
    if (all) {
      all.hidden = allMode || selected.size === 0 || listTotal() <= selected.size;
      fill(all, listTotal());
    }
  }

  function clearSelection() {
    allMode = false;
    allFilters = "";
    selected.clear();
  }

  if (bulkForm) {
    document.addEventListener("change", (event) => {
      const box = event.target;
      if (!box.classList || !box.classList.contains("conv-select")) return;
      if (allMode) {
        // Unticking one row leaves "all": what stays ticked is this page's other rows.
        allMode = false;
        document.querySelectorAll("#conversation-list .conv-select").forEach((other) => {
          if (other !== box) selected.add(other.value);
        });
      }
      if (box.checked) selected.add(box.value);
      else selected.delete(box.value);
      syncBulk();
    });
    bulkForm.addEventListener("click", (event) => {
      if (event.target.closest('[data-action="bulk-clear"]')) {
        clearSelection();
        syncBulk();
      } else if (event.target.closest('[data-action="bulk-select-all"]')) {
        allMode = true;
        allFilters = filterQuery();
        syncBulk();
      }
    });
    // Other filters show another list: a selection of the old one does not carry over.
    const filters = byId("inbox-filters");
    if (filters) {
      filters.addEventListener("change", () => {
        if (allMode) {
          clearSelection();
          syncBulk();
        }
      });
      filters.addEventListener("input", () => {
        if (allMode) {
          clearSelection();
          syncBulk();
        }
      });
    }
    // The selected ids go as hidden fields: rows may have been re-rendered meanwhile.
    bulkForm.addEventListener("submit", () => {
      bulkForm.querySelectorAll('input[name="ids"]').forEach((input) => input.remove());
      bulkForm.querySelector('input[name="all"]').value = allMode ? "1" : "";
      bulkForm.querySelector('input[name="filters"]').value = allMode ? allFilters : "";
      for (const id of allMode ? [] : selected) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = "ids";
        input.value = id;
        bulkForm.appendChild(input);
      }
      const next = bulkForm.querySelector('input[name="next"]');
      if (next) next.value = location.pathname + location.search;
    });
    // The list is re-rendered on every event: keep the boxes ticked.
    const list = byId("inbox-list");
    if (list) new MutationObserver(() => { syncBulk(); markCursor(); }).observe(list, { childList: true });
  }

  // ---------------------------------------------------------------- label menus, live

  // A label created, renamed or deleted anywhere: the filter's and the bulk bar's label
  // menus are drawn again by the server (what is chosen in them stays chosen).
  const refreshLabelMenus = debounced(async function () {
    const form = byId("inbox-filters");
    if (!form || !form.dataset.labelMenusUrl) return;
    const filter = form.querySelector('select[name="label"]');
    const url = form.dataset.labelMenusUrl + "?label=" + encodeURIComponent(filter ? filter.value : "");
    const response = await fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    // What is chosen now (it may have changed while the menus were fetched) stays chosen.
    const chosen = {
      "label-filter-box": form.querySelector('select[name="label"]'),
      "bulk-label-box": bulkForm && bulkForm.querySelector('select[name="label"]'),
    };
    for (const id of ["label-filter-box", "bulk-label-box"]) {
      const fresh = template.content.getElementById(id);
      const old = byId(id);
      if (!fresh || !old) continue;
      const was = chosen[id] && chosen[id].value;
      old.replaceWith(fresh);
      const menu = fresh.querySelector('select[name="label"]');
      if (was && menu && menu.querySelector('option[value="' + CSS.escape(was) + '"]')) menu.value = was;
    }
  }, 300);

  // ---------------------------------------------------------------- realtime

  const realtime = window.Switchboard && window.Switchboard.realtime;
  if (realtime) {
    const listEvents = ["conversation.labeled", "label.updated", "label.deleted", "label.created"];
    for (const name of listEvents) {
      realtime.on(name, (data) => {
        if (name !== "conversation.labeled") refreshLabelMenus();
        const tools = inbox();
        if (tools) {
          tools.refreshList();
          const pane = byId("conversation");
          if (name === "conversation.labeled" && pane && String(data.id) === pane.dataset.conversationId) {
            refreshPanel();
          }
        }
        refreshViews();
      });
    }
    for (const name of [
      "message.created",
      "conversation.updated",
      "conversation.assigned",
      "conversation.status_changed",
      "saved_view.changed",
      "resync",
    ]) {
      realtime.on(name, refreshViews);
    }
    realtime.on("client.labeled", () => refreshPanel());
    realtime.on("resync", refreshLabelMenus); // back after being offline: labels may have changed
  }

  // The side panel comes with the conversation page; after a label change elsewhere we
  // fetch the page's panel again (the conversation page renders it).
  const refreshPanel = debounced(async function () {
    const panel = byId("contact-panel");
    const pane = byId("conversation");
    if (!panel || !pane) return;
    const response = await fetch(location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    const fresh = template.content.getElementById("contact-panel");
    if (fresh) {
      panel.replaceWith(fresh);
      if (window.htmx) window.htmx.process(fresh);
    }
  }, 300);

  // ---------------------------------------------------------------- contact panel

  document.addEventListener("click", (event) => {
    if (!event.target.closest('[data-action="toggle-contact"]')) return;
    const box = document.querySelector(".inbox.has-panel");
    if (box) box.classList.toggle("show-panel");
  });

  // ---------------------------------------------------------------- keyboard

  let cursorId = null; // the conversation the j/k cursor is on

  function rows() {
    return Array.from(document.querySelectorAll("#conversation-list li.conv-row"));
  }

  function markCursor() {
    for (const row of rows()) row.classList.toggle("is-kbd", row.dataset.conversationId === cursorId);
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    let index = all.findIndex((row) => row.dataset.conversationId === cursorId);
    if (index === -1) index = all.findIndex((row) => row.classList.contains("is-current"));
    index = index === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    cursorId = all[index].dataset.conversationId;
    markCursor();
    const link = all[index].querySelector(".conv-link");
    if (link) link.focus({ preventScroll: false });
  }

  function openCursor() {
    const row = rows().find((item) => item.dataset.conversationId === cursorId);
    const link = row && row.querySelector(".conv-link");
    if (link) link.click();
    return !!link;
  }

  function replyBox() {
    return document.querySelector("#reply-box textarea[name=body]");
  }

  function focusReply() {
    const box = replyBox();
    if (box) box.focus();
    return box;
  }

  function isTyping(target) {
    if (!target || !target.closest) return false;
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']");
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) return;
    const help = byId("shortcuts-help");
    if (help && help.open) return; // the dialog handles Esc itself
    switch (event.key) {
      case "j":
        event.preventDefault();
        move(1);
        break;
      case "k":
        event.preventDefault();
        move(-1);
        break;
      case "o":
        if (openCursor()) event.preventDefault();
        break;
      case "Enter":
        // On a focused link Enter already opens it; elsewhere it opens the cursor's row.
        if (event.target.closest && event.target.closest("a, button")) return;
        if (openCursor()) event.preventDefault();
        break;
      case "r":
        if (focusReply()) event.preventDefault();
        break;
      case "n": {
        const note = document.querySelector('[data-compose-mode="note"]');
        if (!note && !replyBox()) return;
        event.preventDefault();
        if (note) {
          note.click();
          // The note switch shows the note box (notes.js): write there.
          const input = document.querySelector('[data-role="note-input"]');
          if (input && input.offsetParent !== null) {
            input.focus();
            break;
          }
        }
        focusReply();
        break;
      }
      case "/": {
        const box = replyBox();
        if (!box) return;
        event.preventDefault();
        box.focus();
        box.setRangeText("/", box.selectionStart, box.selectionEnd, "end");
        box.dispatchEvent(new Event("input", { bubbles: true }));
        break;
      }
      case "?":
        if (help && typeof help.showModal === "function") {
          event.preventDefault();
          help.showModal();
        }
        break;
      default:
    }
  });
})();
