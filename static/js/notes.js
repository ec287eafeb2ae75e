// The conversation page's compose area and its colleagues' activity:
//   - the Reply / Note switch ([data-compose-mode]; a keyboard shortcut may click it),
//   - @mention autocomplete in the note box (colleagues listed in [data-role=mention-members]),
//   - Ctrl/Cmd+Enter saves a note,
//   - "X is typing" / "X is viewing": this page sends conversation.viewing on open and every
//     20 s, conversation.typing at most every 3 s while the agent types; what colleagues send
//     is shown and expires by itself (typing after 6 s, viewing after 50 s).
(function () {
  "use strict";

  const byId = (id) => document.getElementById(id);
  const TYPING_EVERY_MS = 3000;
  const VIEWING_EVERY_MS = 20000;
  const TYPING_SHOWN_MS = 6000;
  const VIEWING_SHOWN_MS = 50000;

  // ---------------------------------------------------------------- Reply / Note switch

  function setMode(mode) {
    const compose = byId("compose");
    if (!compose) return;
    compose.dataset.mode = mode;
    compose.querySelectorAll("[data-compose-mode]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.composeMode === mode));
    });
    const field =
      mode === "note"
        ? compose.querySelector("[data-role=note-input]")
        : compose.querySelector("#reply-box textarea, #reply-box select");
    if (field) field.focus();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-compose-mode]");
    if (button) {
      event.preventDefault();
      setMode(button.dataset.composeMode);
      return;
    }
    const option = event.target.closest && event.target.closest("[data-mention]");
    if (option) {
      event.preventDefault();
      chooseMention(option.dataset.mention);
    }
  });

  // ---------------------------------------------------------------- @mentions

  function noteInput() {
    return document.querySelector("[data-role=note-input]");
  }

  function members() {
    return Array.from(document.querySelectorAll("[data-role=mention-members] li")).map((li) => ({
      username: li.dataset.username,
      name: li.dataset.name || li.dataset.username,
    }));
  }

  // The "@word" just before the caret, or null.
  function mentionQuery(input) {
    const before = input.value.slice(0, input.selectionStart);
    const match = /(^|[^\w@])@([\w.+-]*)$/.exec(before);
    return match ? { query: match[2], start: before.length - match[2].length - 1 } : null;
  }

  let active = 0;

  function menu() {
    return document.querySelector("[data-role=mention-menu]");
  }

  function closeMenu() {
    const list = menu();
    if (list) {
      list.hidden = true;
      list.replaceChildren();
    }
    const input = noteInput();
    if (input) input.removeAttribute("aria-activedescendant");
  }

  function updateMenu() {
    const input = noteInput();
    const list = menu();
    if (!input || !list) return;
    const found = mentionQuery(input);
    if (!found) return closeMenu();
    const query = found.query.toLowerCase();
    const matches = members()
      .filter((m) => m.username.toLowerCase().startsWith(query) || m.name.toLowerCase().includes(query))
      .slice(0, 8);
    if (!matches.length) return closeMenu();
    active = Math.min(active, matches.length - 1);
    list.replaceChildren(
      ...matches.map((member, index) => {
        const li = document.createElement("li");
        li.id = `mention-option-${index}`;
        li.setAttribute("role", "option");
        li.dataset.mention = member.username;
        li.className = "mention-option" + (index === active ? " is-active" : "");
        li.setAttribute("aria-selected", String(index === active));
        const name = document.createElement("strong");
        name.textContent = member.name;
        const handle = document.createElement("span");
        handle.className = "muted";
        handle.textContent = " @" + member.username;
        li.append(name, handle);
        return li;
      }),
    );
    list.hidden = false;
    input.setAttribute("aria-activedescendant", `mention-option-${active}`);
  }

  function chooseMention(username) {
    const input = noteInput();
    if (!input) return;
    const found = mentionQuery(input);
    if (!found) return closeMenu();
    const before = input.value.slice(0, found.start);
    const after = input.value.slice(input.selectionStart);
    const inserted = "@" + username + " ";
    input.value = before + inserted + after;
    const caret = before.length + inserted.length;
    input.setSelectionRange(caret, caret);
    input.focus();
    closeMenu();
  }

  document.addEventListener("input", (event) => {
    if (event.target.matches && event.target.matches("[data-role=note-input]")) {
      active = 0;
      updateMenu();
    }
    if (event.target.closest && event.target.closest("#compose") && event.target.matches("textarea")) {
      typing();
    }
  });

  document.addEventListener("keydown", (event) => {
    const input = event.target;
    if (!input.matches || !input.matches("[data-role=note-input]")) return;
    const list = menu();
    const open = list && !list.hidden;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const count = list.children.length;
      active = (active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      updateMenu();
    } else if (open && (event.key === "Enter" || event.key === "Tab")) {
      event.preventDefault();
      const option = list.children[active];
      if (option) chooseMention(option.dataset.mention);
    } else if (open && event.key === "Escape") {
      event.preventDefault();
      closeMenu();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      const form = input.form;
      if (form && input.value.trim()) form.requestSubmit();
    }
  });

  document.addEventListener("focusout", (event) => {
    if (event.target.matches && event.target.matches("[data-role=note-input]")) {
      setTimeout(closeMenu, 200); // a click on an option lands first
    }
  });

  // ---------------------------------------------------------------- typing and viewing

  const realtime = window.Switchboard && window.Switchboard.realtime;

  function conversationId() {
    const pane = byId("conversation");
    return pane ? Number(pane.dataset.conversationId) : null;
  }

  function myId() {
    return Number(document.body.dataset.user || 0);
  }

  let lastTyping = 0;
  function typing() {
    const id = conversationId();
    const now = Date.now();
    if (!realtime || !id || now - lastTyping < TYPING_EVERY_MS) return;
    if (realtime.send("conversation.typing", { conversation_id: id })) lastTyping = now;
  }

  let lastViewing = 0;
  function viewing(force) {
    const id = conversationId();
    const now = Date.now();
    if (!realtime || !id || document.visibilityState !== "visible") return;
    if (!force && now - lastViewing < VIEWING_EVERY_MS - 500) return;
    if (realtime.send("conversation.viewing", { conversation_id: id })) lastViewing = now;
  }

  // user id -> {name, typingUntil, viewingUntil}
  const colleagues = new Map();

  function render() {
    const line = document.querySelector("[data-role=conversation-activity]");
    if (!line) return;
    const now = Date.now();
    const typingNames = [];
    const viewingNames = [];
    for (const [id, entry] of colleagues) {
      if (entry.typingUntil > now) typingNames.push(entry.name);
      else if (entry.viewingUntil > now) viewingNames.push(entry.name);
      else if (entry.viewingUntil <= now && entry.typingUntil <= now) colleagues.delete(id);
    }
    const parts = [];
    if (typingNames.length) {
      parts.push(interpolate(gettext("%(names)s is typing…"), { names: typingNames.join(", ") }, true));
    }
    if (viewingNames.length) {
      parts.push(interpolate(gettext("%(names)s is viewing"), { names: viewingNames.join(", ") }, true));
    }
    line.textContent = parts.join(" · ");
    line.dataset.typing = typingNames.join(",");
    line.dataset.viewing = viewingNames.join(",");
  }

  function heard(data, kind) {
    if (!data || data.conversation_id !== conversationId() || data.user_id === myId()) return;
    const entry = colleagues.get(data.user_id) || { name: data.name, typingUntil: 0, viewingUntil: 0 };
    const fresh = !colleagues.has(data.user_id);
    entry.name = data.name || entry.name;
    const now = Date.now();
    entry.viewingUntil = now + VIEWING_SHOWN_MS; // typing means viewing, too
    if (kind === "typing") entry.typingUntil = now + TYPING_SHOWN_MS;
    colleagues.set(data.user_id, entry);
    render();
    if (fresh) {
      // Say we are here (the server takes one viewing signal per socket per second).
      const wait = Math.max(0, lastViewing + 1500 - Date.now()) + 200 + Math.random() * 500;
      setTimeout(() => viewing(true), wait);
    }
  }

  if (realtime && conversationId()) {
    realtime.on("conversation.typing", (data) => heard(data, "typing"));
    realtime.on("conversation.viewing", (data) => heard(data, "viewing"));
    realtime.on("conversation.left", (data) => {
      if (data && data.conversation_id === conversationId()) {
        colleagues.delete(data.user_id);
        render();
      }
    });
    // A note or reply of a colleague arrived: they stopped typing.
    realtime.on("message.created", (data) => {
      const entry = data && data.author_id && colleagues.get(data.author_id);
      if (entry && data.conversation_id === conversationId()) {
        entry.typingUntil = 0;
        render();
      }
    });
    realtime.on("welcome", () => viewing(true));
    if (realtime.state === "live") viewing(true);
    document.addEventListener("visibilitychange", () => viewing(true));
    setInterval(() => viewing(false), VIEWING_EVERY_MS);
    setInterval(render, 1000);
  }
})();
