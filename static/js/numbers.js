// Settings → WhatsApp: keeps the numbers table live without a reload.
//
// No row HTML is built here: on an event the page asks the server for the table again (the
// list URL with HX-Request answers the table partial) and puts it in place, so the template
// stays the one renderer. Events come from Switchboard.realtime (static/js/realtime.js):
//   number.deleted         -> remove that row at once; a notice says it is gone
//   number.deletion_failed -> refresh (the number is back, deactivated, its error in the row)
//                             and a notice shows the error
//   number.updated         -> refresh (active / status changed)
//   resync (reconnected)   -> refresh: nothing missed while offline stays missed
(function () {
  "use strict";

  const byId = (id) => document.getElementById(id);

  function start() {
    const container = byId("number-table");
    if (!container || !window.Switchboard || !window.Switchboard.realtime) return;
    const realtime = window.Switchboard.realtime;
    const url = container.dataset.refreshUrl;

    async function refresh() {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { "HX-Request": "true" },
      });
      const redirect = response.headers.get("HX-Redirect");
      if (redirect) {
        location.href = redirect; // the session ended: the login page, then back here
        return;
      }
      if (!response.ok) throw new Error(url + " answered " + response.status);
      container.innerHTML = await response.text();
      if (window.htmx) window.htmx.process(container);
    }

    // A burst of events costs at most two requests; the last starts after the last event.
    let timer = null;
    let running = false;
    let again = false;
    function scheduleRefresh() {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        if (running) {
          again = true;
          return;
        }
        running = true;
        try {
          await refresh();
        } catch (err) {
          console.warn("numbers: refresh failed", err);
        } finally {
          running = false;
          if (again) {
            again = false;
            scheduleRefresh();
          }
        }
      }, 150);
    }

    function notice(text, kind) {
      const list = byId("number-notices");
      if (!list) return;
      const item = document.createElement("li");
      item.className = "flash-item " + (kind || "info");
      item.textContent = text; // never HTML: errors come from the server as plain text
      list.appendChild(item);
    }

    function row(id) {
      return container.querySelector('tr[data-number-id="' + String(Number(id)) + '"]');
    }

    function phoneOf(tr) {
      const cell = tr && tr.querySelector("td .mono");
      return cell ? cell.textContent.trim() : "";
    }

    realtime.on("number.deleted", (data) => {
      const tr = row(data.id);
      if (tr) {
        const phone = phoneOf(tr);
        tr.remove();
        notice(interpolate(gettext("WhatsApp number %(phone)s was deleted."), { phone }, true), "success");
        if (!container.querySelector("tr[data-number-id]")) scheduleRefresh(); // empty state
      } else {
        notice(gettext("A WhatsApp number being deleted in the background is now gone."), "success");
      }
    });

    realtime.on("number.deletion_failed", (data) => {
      const phone = phoneOf(row(data.id));
      notice(
        interpolate(
          gettext("WhatsApp number %(phone)s was not deleted: %(error)s"),
          { phone: phone || "#" + data.id, error: data.error || gettext("unknown error") },
          true
        ),
        "error"
      );
      scheduleRefresh();
    });

    realtime.on("number.updated", scheduleRefresh);

    // QR-linked sessions (admins hear these): the QR is swapped in place as it rotates; any
    // other change of a session re-renders the table and its cards.
    realtime.on("whatsapp.qr", (data) => {
      const card = container.querySelector('[data-session-number="' + String(Number(data.number_id)) + '"]');
      const image = card && card.querySelector("[data-session-qr]");
      if (!image || !String(data.qrDataUrl || "").startsWith("data:image/png;base64,")) {
        scheduleRefresh();
        return;
      }
      image.src = data.qrDataUrl;
      image.closest("figure").hidden = false;
      // A table request already on its way was answered from before this QR: it would put the
      // old code back, so ask once more when it lands.
      if (running) again = true;
      const label = card.querySelector("[data-session-status]");
      if (label) label.textContent = data.status_label || gettext("Waiting for QR scan");
    });
    for (const name of [
      "whatsapp.connected",
      "whatsapp.logout",
      "whatsapp.error",
      "whatsapp.reconnect_failed",
      "whatsapp.health_check_failed",
    ]) {
      realtime.on(name, scheduleRefresh);
    }
    realtime.on("resync", scheduleRefresh);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
