// Settings → Members: presence pills follow presence.changed live (online / away / offline).
// The words come from the table's data-label-* attributes (translated by the page).
(function () {
  "use strict";
  function start() {
    const table = document.querySelector('[data-role="members"]');
    if (!table || !window.Switchboard || !window.Switchboard.realtime) return;
    window.Switchboard.realtime.on("presence.changed", (data) => {
      const pill = table.querySelector(`[data-presence="${Number(data.user_id)}"]`);
      const status = String(data.status || "");
      const label = table.dataset[`label${status.charAt(0).toUpperCase()}${status.slice(1)}`];
      if (!pill || !label) return;
      pill.className = `pill presence-${status}`;
      pill.textContent = label;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
