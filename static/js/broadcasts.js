// Broadcast pages: live progress from `broadcast.progress` / `broadcast.completed` events, a
// re-fetch of what is shown after a reconnect ("resync"), and the create form's small helpers.
(function () {
  "use strict";

  // The words of the page (Broadcast.Status); an event's own status_label wins.
  const LABELS = {
    draft: gettext("Draft"),
    scheduled: gettext("Scheduled"),
    sending: gettext("Sending"),
    completed: gettext("Completed"),
    cancelled: gettext("Cancelled"),
    failed: gettext("Failed"),
  };
  const ACTIVE = ["draft", "scheduled", "sending"];
  const SEGMENTS = ["sent", "failed", "unknown", "cancelled"];

  function apply(data) {
    if (!data || data.id === undefined) return;
    const id = String(data.id);
    const total = Number(data.total) || 0;
    document.querySelectorAll(`[data-broadcast-progress="${id}"]`).forEach((box) => {
      for (const [name, value] of Object.entries(data)) {
        const cell = box.querySelector(`[data-count="${name}"]`);
        if (cell) cell.textContent = value;
      }
      for (const name of SEGMENTS) {
        const seg = box.querySelector(`[data-seg="${name}"]`);
        if (seg) seg.style.width = total ? `${(100 * (Number(data[name]) || 0)) / total}%` : "0%";
      }
      const bar = box.querySelector("[role=progressbar]");
      if (bar) {
        bar.setAttribute("aria-valuemax", total);
        bar.setAttribute("aria-valuenow", total - (Number(data.pending) || 0));
      }
    });
    document.querySelectorAll(`[data-broadcast="${id}"]`).forEach((scope) => {
      const pill = scope.querySelector('[data-field="status"]');
      if (pill && data.status) {
        pill.textContent = data.status_label || LABELS[data.status] || data.status;
        pill.className = pill.className.replace(/bcast-status-\S+/, `bcast-status-${data.status}`);
      }
      if (data.status && !ACTIVE.includes(data.status)) {
        scope.querySelectorAll("[data-cancel-form]").forEach((form) => form.remove());
      }
      const note = scope.querySelector("[data-completed-note]");
      if (note) note.hidden = data.status !== "completed";
      scheduleRefresh();
    });
  }

  // Parts of the page rendered by the server (recipient table, timestamps) are re-fetched from
  // the page's own URL after progress, at most every few seconds, and swapped in place.
  const REFRESH_EVERY_MS = 3000;
  let refreshTimer = null;
  let lastRefresh = 0;

  function refreshRegions() {
    refreshTimer = null;
    lastRefresh = Date.now();
    fetch(location.href, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-region][id]").forEach((region) => {
          const next = fresh.getElementById(region.id);
          if (next) region.innerHTML = next.innerHTML;
        });
      })
      .catch(() => {});
  }

  function scheduleRefresh() {
    if (refreshTimer || !document.querySelector("[data-live-region]")) return;
    const wait = Math.max(0, lastRefresh + REFRESH_EVERY_MS - Date.now());
    refreshTimer = setTimeout(refreshRegions, wait);
  }

  // The REST representation -> the event's shape.
  function fromApi(row) {
    const counts = row.counts || {};
    return { id: row.id, status: row.status, status_label: row.status_label, ...counts };
  }

  function resync() {
    document.querySelectorAll("[data-broadcast][data-api-url]").forEach((scope) => {
      fetch(scope.dataset.apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((row) => row && apply(fromApi(row)))
        .catch(() => {});
    });
  }

  function setupForm(form) {
    const text = form.querySelector("textarea[name=text]");
    const counter = form.querySelector("[data-text-counter]");
    if (text && counter) {
      const max = Number(text.dataset.maxLength) || 4096;
      const update = () => {
        counter.textContent = text.value.length;
        counter.classList.toggle("text-danger", text.value.length > max);
      };
      text.addEventListener("input", update);
      update();
    }
    // Show a block only when its radio choice is picked, e.g. data-show-when="when=at".
    const blocks = form.querySelectorAll("[data-show-when]");
    const refresh = () => {
      blocks.forEach((block) => {
        const [name, value] = block.dataset.showWhen.split("=");
        const checked = form.querySelector(`input[name="${name}"]:checked`);
        block.hidden = !checked || checked.value !== value;
      });
    };
    form.addEventListener("change", refresh);
    refresh();
  }

  function init() {
    document.querySelectorAll("[data-broadcast-form]").forEach(setupForm);
    const realtime = window.Switchboard && window.Switchboard.realtime;
    if (!realtime) return;
    realtime.on("broadcast.progress", apply);
    realtime.on("broadcast.completed", apply);
    realtime.on("resync", resync);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
