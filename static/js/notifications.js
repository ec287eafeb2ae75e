// The bell (templates/notifications/_bell.html): the unread count, live.
//   notification.created -> count +1 (the server's count), the page title "(N) …", a browser
//                           notification when this browser allowed them, a short sound when
//                           the user turned sound on (Settings → Notifications)
//   notification.read    -> the count goes down in every tab
//   resync               -> the count is fetched again (missed while offline)
// Opening the bell loads the latest ones; "Enable desktop notifications" asks the browser's
// permission on that click only (never on load).
(function () {
  "use strict";

  const baseTitle = document.title.replace(/^\(\d+\)\s+/, "");

  function bell() {
    return document.getElementById("notification-bell");
  }

  function setCount(count) {
    const root = bell();
    if (!root) return;
    // The server counts up to data-unread-counted (notifications.models.UNREAD_COUNTED).
    const counted = Number(root.dataset.unreadCounted) || 100;
    count = Math.min(counted, Math.max(0, Number(count) || 0));
    root.dataset.unread = String(count);
    const shown = count >= counted ? `${counted - 1}+` : String(count);
    const badge = root.querySelector("[data-role=bell-count]");
    if (badge) {
      badge.textContent = shown;
      badge.hidden = count === 0;
    }
    document.title = count ? `(${shown}) ${baseTitle}` : baseTitle;
  }

  async function loadPanel() {
    const root = bell();
    const panel = root && root.querySelector("[data-role=bell-panel]");
    if (!panel) return;
    try {
      const response = await fetch(root.dataset.listUrl, {
        credentials: "same-origin",
        headers: { "HX-Request": "true" },
      });
      if (!response.ok) return;
      panel.innerHTML = await response.text();
      if (window.htmx) window.htmx.process(panel);
      showEnableButtons(panel);
    } catch (err) {
      console.warn("notifications: list failed", err);
    }
  }

  // After a reconnect: the count from the server (what arrived meanwhile is stored).
  async function refreshCount() {
    const root = bell();
    if (!root) return;
    try {
      const response = await fetch(root.dataset.listUrl, {
        credentials: "same-origin",
        headers: { "HX-Request": "true" },
      });
      if (!response.ok) return;
      const match = /data-unread-count="(\d+)"/.exec(await response.text());
      if (match) setCount(match[1]);
    } catch (err) {
      console.warn("notifications: count failed", err);
    }
  }

  function desktopSupported() {
    return "Notification" in window;
  }

  function showEnableButtons(root) {
    (root || document).querySelectorAll("[data-role=enable-desktop]").forEach((button) => {
      button.hidden = !desktopSupported() || Notification.permission !== "default";
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-role=enable-desktop]");
    if (!button || !desktopSupported()) return;
    event.preventDefault();
    Notification.requestPermission().then(() => showEnableButtons());
  });

  document.addEventListener(
    "toggle",
    (event) => {
      if (event.target.matches && event.target.matches("[data-role=bell-menu]") && event.target.open) {
        loadPanel();
      }
    },
    true,
  );

  let audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start();
      oscillator.stop(audio.currentTime + 0.25);
    } catch (err) {
      /* no audio here */
    }
  }

  function announce(data) {
    const root = bell();
    if (root && root.dataset.sound === "on") beep();
    if (desktopSupported() && Notification.permission === "granted" && document.visibilityState !== "visible") {
      const shown = new Notification(data.title, { body: data.body || "", tag: `notification-${data.id}` });
      shown.onclick = () => {
        window.focus();
        if (data.url) location.href = data.url;
      };
    }
  }

  const realtime = window.Switchboard && window.Switchboard.realtime;
  if (realtime) {
    realtime.on("notification.created", (data) => {
      const root = bell();
      const current = root ? Number(root.dataset.unread || 0) : 0;
      setCount(data.unread_count !== undefined ? data.unread_count : current + 1);
      announce(data);
      const menu = root && root.querySelector("[data-role=bell-menu]");
      if (menu && menu.open) loadPanel();
    });
    realtime.on("notification.read", (data) => setCount(data.unread_count));
    realtime.on("resync", (data) => {
      if (data && data.reconnected) refreshCount();
    });
  }

  function start() {
    const root = bell();
    if (root) setCount(root.dataset.unread);
    showEnableButtons();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
