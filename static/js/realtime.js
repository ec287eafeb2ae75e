// Switchboard realtime client: one WebSocket to /ws/ per tab, shared by every page script.
//
//   Switchboard.realtime.on("message.created", (data) => { ... });
//   Switchboard.realtime.on("resync", () => { ...re-fetch what may have been missed... });
//   Switchboard.realtime.send("conversation.typing", { conversation_id: 7 });  // to the server
//
// Reconnects with exponential backoff and jitter (1 s doubling to 30 s); when the server
// closes with 4012 (daphne's "service restart", a rolling restart; 1012/1001 from other
// servers), within 0.2-3 s, spread at random. After every
// (re)connect, and whenever the server says it lost events ("resync"), listeners of "resync" run so pages
// re-fetch what they show, so nothing missed while the socket was down stays missed.
// A 4401 close means the session ended: we go to the login page instead of retrying.
(function () {
  "use strict";
  const listeners = new Map();
  let socket = null;
  let attempt = 0;
  let everConnected = false;
  let pingTimer = null;

  function emit(event, data) {
    for (const handler of listeners.get(event) || []) {
      try {
        handler(data);
      } catch (err) {
        console.error("realtime handler failed", event, err);
      }
    }
  }

  function setState(state) {
    document.documentElement.dataset.realtime = state; // "connecting" | "live" | "offline"
    emit("state", state);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    setState("connecting");
    // ?presence=1: also hear who of the company comes online or goes away (presence.changed).
    socket = new WebSocket(`${scheme}://${location.host}/ws/?presence=1`);
    socket.onmessage = (message) => {
      let payload;
      try {
        payload = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (payload.event === "welcome") {
        setState("live");
        // Also on the first connect: an event between the page's render and this moment
        // would otherwise be missed. Pages re-fetch what they show on "resync".
        emit("resync", { reconnected: everConnected });
        everConnected = true;
        attempt = 0;
      }
      emit(payload.event, payload.data || {});
    };
    socket.onclose = (event) => {
      clearInterval(pingTimer);
      setState("offline");
      if (event.code === 4401) {
        location.href = "/login/?next=" + encodeURIComponent(location.pathname + location.search);
        return;
      }
      let delay;
      if (event.code === 4012 || event.code === 1012 || event.code === 1001) {
        // The server is restarting (it said so): come back soon, spread over 0.2-3 s so a
        // thousand tabs do not all knock at the same instant.
        delay = 200 + Math.random() * 2800;
        attempt = 0;
      } else {
        delay = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random());
        attempt += 1;
      }
      setTimeout(connect, delay);
    };
    socket.onopen = () => {
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) socket.send('{"event":"ping"}');
      }, 25000);
    };
  }

  window.Switchboard = window.Switchboard || {};
  window.Switchboard.realtime = {
    on(event, handler) {
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(handler);
      // A page script that loaded after the socket said welcome (its file came late) missed
      // that first "resync": it re-fetches now, or what happened since the render stays missed.
      if (event === "resync" && document.documentElement.dataset.realtime === "live") {
        setTimeout(() => handler({ reconnected: false }), 0);
      }
    },
    // A frame to the server (typing/viewing signals); dropped while the socket is down.
    send(event, data) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify({ event, data: data || {} }));
      return true;
    },
    get state() {
      return document.documentElement.dataset.realtime || "connecting";
    },
  };
  if (document.body && document.body.dataset.user) connect();
  else document.addEventListener("DOMContentLoaded", () => document.body.dataset.user && connect());
})();
