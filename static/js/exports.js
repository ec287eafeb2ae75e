// The delete pages' "Export first" card: live progress from `export.progress` events; when a
// job finishes or fails (and after a reconnect) the card is fetched again from the server.
(function () {
  "use strict";
  if (window.SwitchboardExports) return; // the card may be rendered more than once
  window.SwitchboardExports = true;

  function refresh(card) {
    const url = card.dataset.refreshUrl;
    if (!url) return;
    fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-export-offer]");
        if (fresh) card.replaceWith(document.importNode(fresh, true));
      })
      .catch(() => {});
  }

  function apply(data) {
    if (!data || data.id === undefined) return;
    document.querySelectorAll(`[data-export-offer][data-export-id="${data.id}"]`).forEach((card) => {
      if (data.state !== "queued" && data.state !== "running") {
        refresh(card);
        return;
      }
      const bar = card.querySelector("progress");
      if (bar) {
        bar.value = data.percent;
        bar.textContent = `${data.percent}%`;
      }
      const set = (name, value) => {
        const cell = card.querySelector(`[data-export-${name}]`);
        if (cell) cell.textContent = value;
      };
      set("done", data.done);
      set("total", data.total);
      set("percent", data.percent);
    });
  }

  function resync() {
    document.querySelectorAll("[data-export-offer][data-export-id]").forEach(refresh);
  }

  function init() {
    const realtime = window.Switchboard && window.Switchboard.realtime;
    if (!realtime) return;
    realtime.on("export.progress", apply);
    realtime.on("resync", resync);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
