// Settings → Members: presence pills follow presence.changed live (online / away / offline),
// and are read again from the page after every (re)connect ("resync").
// The words come from the table's data-label-* attributes (translated by the page).
(function () {
  "use strict";
  function start() {
    const table = document.querySelector('[data-role="members"]');
    if (!table || !window.Switchboard || !window.Switchboard.realtime) return;
    let changedDuringResync = null; // users whose change came while the page was re-read
    window.Switchboard.realtime.on("presence.changed", (data) => {
      if (changedDuringResync) changedDuringResync.add(Number(data.user_id));
      const pill = table.querySelector(`[data-presence="${Number(data.user_id)}"]`);
      const status = String(data.status || "");
      const label = table.dataset[`label${status.charAt(0).toUpperCase()}${status.slice(1)}`];
      if (!pill || !label) return;
      pill.className = `pill presence-${status}`;
      pill.textContent = label;
    });
    // On every (re)connect: a change between the page's render and the socket joining the
    // company's presence would otherwise stay missed, so the pills are read again from the page.
    window.Switchboard.realtime.on("resync", async () => {
      const changed = (changedDuringResync = new Set());
      let html;
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        html = await response.text();
      } catch (err) {
        return; // offline again: the next connect tries once more
      } finally {
        if (changedDuringResync === changed) changedDuringResync = null;
      }
      const fresh = new DOMParser().parseFromString(html, "text/html");
      for (const pill of fresh.querySelectorAll("[data-presence]")) {
        const userId = Number(pill.dataset.presence);
        const shown = table.querySelector(`[data-presence="${userId}"]`);
        if (shown && !changed.has(userId)) {  // a live change is newer than the page
          shown.className = pill.className;
          shown.textContent = pill.textContent;
        }
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
