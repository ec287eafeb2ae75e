// Team chats: the chat list (/chats/) and a chat (/chats/<id>/), live through
// Switchboard.realtime. Every write goes to the REST API (/api/v1/chats/...) with the session's
// CSRF token; the events that follow update every member's open pages, this one included.
//
// DOM contract (a browser test depends on it):
//   list:   <ul id="chat-list"> of <li data-chat-id="..."> with a link to the chat; the li goes
//           away on chat.deleted / chat.left, without a reload.
//   detail: <ol id="chat-messages"> of <li data-message-id="...">;
//           <button data-action="delete-chat"> asks confirm(), then sends DELETE with a fresh
//           Idempotency-Key and X-CSRFToken, then goes to /chats/.
(function () {
  "use strict";

  const realtime = () => (window.Switchboard && window.Switchboard.realtime) || { on() {} };
  const me = () => Number(document.body.dataset.user);

  // ------------------------------------------------------------------ API

  function csrfToken() {
    try {
      const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (err) {
      /* fall back to the cookie */
    }
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, url, body, headers) {
    const init = {
      method,
      credentials: "same-origin",
      headers: Object.assign(
        { Accept: "application/json", "X-CSRFToken": csrfToken() },
        body === undefined ? {} : { "Content-Type": "application/json" },
        headers || {}
      ),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(url, init);
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    return { ok: response.ok, status: response.status, data };
  }

  // Field errors of a 400 ({"field": ["message", ...]}) into <ul data-errors-for="field">.
  function showErrors(form, errors) {
    form.querySelectorAll("[data-errors-for]").forEach((list) => {
      list.replaceChildren();
      list.closest(".field")?.classList.remove("has-error");
    });
    const general = [];
    for (const [field, messages] of Object.entries(errors || {})) {
      const list = form.querySelector(`[data-errors-for="${CSS.escape(field)}"]`);
      const items = Array.isArray(messages) ? messages : [String(messages)];
      if (!list) {
        general.push(...items);
        continue;
      }
      list.closest(".field")?.classList.add("has-error");
      for (const message of items) list.append(el("li", {}, message));
    }
    const fallback = form.querySelector('[data-errors-for="non_field_errors"]');
    if (general.length && fallback) for (const message of general) fallback.append(el("li", {}, message));
    else if (general.length) alert(general.join("\n"));
  }

  function errorText(result) {
    const data = result.data || {};
    if (data.detail) return data.detail;
    const first = Object.values(data)[0];
    return Array.isArray(first) ? first[0] : interpolate(gettext("Request failed (%(status)s)."), { status: result.status }, true);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("data-") || name.startsWith("aria-") || name === "title" || name === "type" || name === "datetime" || name === "hidden")
        node.setAttribute(name, value === true ? "" : value);
      else node[name] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // ------------------------------------------------------------------ chat list

  function initList(list) {
    const removed = new Set(); // chats gone while a refresh may be in flight
    const empty = document.getElementById("chat-list-empty");

    function updateEmpty() {
      if (empty) empty.hidden = list.querySelector("li[data-chat-id]") !== null;
    }

    function removeChat(id) {
      removed.add(String(id));
      list.querySelector(`li[data-chat-id="${CSS.escape(String(id))}"]`)?.remove();
      updateEmpty();
    }

    // Re-read the list as the server renders it (one renderer: the template).
    let refreshTimer = null;
    function refresh() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(async () => {
        try {
          const response = await fetch(location.pathname, { credentials: "same-origin" });
          if (!response.ok) return;
          const page = new DOMParser().parseFromString(await response.text(), "text/html");
          const fresh = page.getElementById("chat-list");
          if (!fresh) return;
          list.replaceChildren(...Array.from(fresh.children).map((node) => document.importNode(node, true)));
          for (const id of removed) list.querySelector(`li[data-chat-id="${CSS.escape(id)}"]`)?.remove();
          updateEmpty();
        } catch (err) {
          /* offline: the next resync re-reads */
        }
      }, 150);
    }

    const rt = realtime();
    rt.on("chat.deleted", (data) => removeChat(data.id));
    rt.on("chat.left", (data) => removeChat(data.id));
    rt.on("chat.created", refresh);
    rt.on("chat.updated", refresh);
    rt.on("resync", refresh);
    rt.on("chat.message.created", (data) => {
      const item = list.querySelector(`li[data-chat-id="${CSS.escape(String(data.chat_id))}"]`);
      if (!item) return refresh();
      const last = item.querySelector('[data-role="last-message"]');
      if (last) {
        last.textContent = gettext("last message just now");
        last.title = data.created_at || "";
      }
      list.prepend(item); // most recent activity first, as the server orders them
    });

    const form = document.getElementById("new-chat-form");
    if (form) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = form.querySelector('button[type="submit"]');
        button.disabled = true;
        try {
          const members = Array.from(form.querySelectorAll('input[name="members"]:checked'), (box) => Number(box.value));
          const result = await api("POST", "/api/v1/chats/", { name: form.elements.name.value, members });
          if (result.ok) {
            location.href = `/chats/${result.data.id}/`;
            return;
          }
          showErrors(form, result.status === 400 ? result.data : { non_field_errors: [errorText(result)] });
        } catch (err) {
          showErrors(form, { non_field_errors: [gettext("Could not reach the server; try again.")] });
        } finally {
          button.disabled = false;
        }
      });
    }
  }

  // ------------------------------------------------------------------ one chat

  const timeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  });

  function renderReactions(container, reactions) {
    container.replaceChildren(
      ...(reactions || []).map((reaction) => {
        const mine = reaction.user_ids.includes(me());
        return el(
          "button",
          {
            type: "button",
            class: mine ? "reaction mine" : "reaction",
            "data-action": "toggle-reaction",
            "data-emoji": reaction.emoji,
            title: reaction.names.join(", "),
            "aria-pressed": mine ? "true" : "false",
          },
          `${reaction.emoji} ${reaction.count}`
        );
      })
    );
  }

  // The same markup as templates/messaging/chat_message.html.
  function renderMessage(message, quickReactions) {
    const mine = message.author && message.author.id === me();
    const created = message.created_at ? new Date(message.created_at) : null;
    const footer = el(
      "footer",
      { class: "bubble-foot" },
      el("time", { datetime: message.created_at || "" }, created ? timeFormat.format(created) : "")
    );
    if (message.edited_at) footer.append(el("span", { "data-role": "edited", title: message.edited_at }, " · " + gettext("edited")));
    if (mine) footer.append(" ", el("button", { type: "button", class: "link-button", "data-action": "edit-message" }, gettext("Edit")));
    const reactions = el("div", { class: "reactions", "data-role": "reactions" });
    renderReactions(reactions, message.reactions);
    const picker = el(
      "div",
      { class: "reaction-picker", "aria-label": gettext("React") },
      ...quickReactions.map((emoji) =>
        el("button", { type: "button", "data-action": "toggle-reaction", "data-emoji": emoji, title: interpolate(gettext("React with %(emoji)s"), { emoji }, true) }, emoji)
      )
    );
    return el(
      "li",
      {
        "data-message-id": String(message.id),
        "data-author-id": message.author ? String(message.author.id) : "",
        class: `bubble chat-message ${mine ? "bubble-out" : "bubble-in"}`,
      },
      el("header", { class: "bubble-head" }, message.author ? message.author.name : gettext("Former member")),
      el("div", { class: "bubble-body prewrap", "data-role": "body" }, message.body),
      footer,
      reactions,
      picker
    );
  }

  function initChat(room, thread) {
    const chatId = Number(room.dataset.chatId);
    const chatName = room.dataset.chatName;
    const quickReactions = (room.dataset.quickReactions || "").split(" ").filter(Boolean);
    const base = `/api/v1/chats/${chatId}`;
    const empty = document.getElementById("chat-empty");
    const sendForm = document.getElementById("chat-send");
    let gone = false;

    const itemOf = (id) => thread.querySelector(`li[data-message-id="${CSS.escape(String(id))}"]`);

    function nearBottom() {
      return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
    }

    function upsertMessage(message) {
      const existing = itemOf(message.id);
      if (existing && existing.classList.contains("editing")) {
        // Keep the open editor; refresh what is around it.
        renderReactions(existing.querySelector('[data-role="reactions"]'), message.reactions);
        return;
      }
      const item = renderMessage(message, quickReactions);
      if (existing) {
        existing.replaceWith(item);
        return;
      }
      const follow = nearBottom();
      // Keep id order (a late event must not land below a newer message).
      const later = Array.from(thread.children).find((node) => Number(node.dataset.messageId) > message.id);
      thread.insertBefore(item, later || null);
      if (empty) empty.hidden = true;
      if (follow) item.scrollIntoView({ block: "end" });
    }

    function chatGone(text) {
      if (gone) return;
      gone = true;
      const banner = document.getElementById("chat-gone");
      if (banner) {
        banner.querySelector("p").textContent = text || gettext("This chat was deleted.");
        banner.hidden = false;
      }
      room.querySelectorAll("button, textarea, input").forEach((control) => (control.disabled = true));
      setTimeout(() => (location.href = "/chats/"), 1500);
    }

    // Re-read the chat as the server renders it after a reconnect (missed events).
    async function resync() {
      try {
        const response = await fetch(location.pathname, { credentials: "same-origin" });
        if (response.status === 404) return chatGone(gettext("This chat was deleted, or you are no longer in it."));
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("chat-messages");
        if (fresh) thread.replaceChildren(...Array.from(fresh.children).map((node) => document.importNode(node, true)));
        const members = page.getElementById("chat-members");
        if (members) document.getElementById("chat-members").textContent = members.textContent;
        if (empty) empty.hidden = thread.children.length > 0;
      } catch (err) {
        /* offline: the next resync re-reads */
      }
    }

    const rt = realtime();
    const here = (data) => Number(data.chat_id) === chatId;
    rt.on("chat.message.created", (data) => here(data) && upsertMessage(data));
    rt.on("chat.message.edited", (data) => here(data) && upsertMessage(data));
    const onReaction = (data) => {
      if (!here(data)) return;
      const item = itemOf(data.message_id);
      if (item) renderReactions(item.querySelector('[data-role="reactions"]'), data.reactions);
    };
    rt.on("reaction.added", onReaction);
    rt.on("reaction.removed", onReaction);
    rt.on("chat.deleted", (data) => Number(data.id) === chatId && chatGone(gettext("This chat was deleted.")));
    rt.on("chat.left", (data) => {
      if (Number(data.id) === chatId) location.href = "/chats/";
    });
    rt.on("chat.updated", (data) => {
      if (Number(data.id) !== chatId) return;
      const names = data.members.map((member) => member.name).join(", ");
      document.getElementById("chat-members").textContent =
        interpolate(
          ngettext("%(count)s member: %(names)s", "%(count)s members: %(names)s", data.member_count),
          { count: data.member_count, names },
          true
        );
      const title = room.querySelector('[data-role="chat-name"]');
      if (title) title.textContent = data.name;
    });
    rt.on("resync", resync);

    // Send: Enter sends, Shift+Enter is a new line.
    const textarea = sendForm.elements.body;
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendForm.requestSubmit();
      }
    });
    sendForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = sendForm.querySelector('button[type="submit"]');
      button.disabled = true;
      try {
        const result = await api("POST", `${base}/messages/`, { body: textarea.value });
        if (result.ok) {
          textarea.value = "";
          showErrors(sendForm, {});
          upsertMessage(result.data);
          itemOf(result.data.id)?.scrollIntoView({ block: "end" });
        } else if (result.status === 404) {
          chatGone();
        } else {
          showErrors(sendForm, result.status === 400 ? result.data : { body: [errorText(result)] });
        }
      } catch (err) {
        showErrors(sendForm, { body: [gettext("Could not reach the server; try again.")] });
      } finally {
        button.disabled = gone;
        textarea.focus();
      }
    });

    // Reactions: a click toggles mine.
    async function toggleReaction(item, emoji) {
      const chip = Array.from(item.querySelectorAll('[data-role="reactions"] [data-emoji]')).find(
        (node) => node.dataset.emoji === emoji
      );
      const mine = chip !== undefined && chip.classList.contains("mine");
      const url = `${base}/messages/${item.dataset.messageId}/reactions/`;
      const result = mine
        ? await api("DELETE", `${url}${encodeURIComponent(emoji)}/`)
        : await api("POST", url, { emoji });
      if (result.ok) renderReactions(item.querySelector('[data-role="reactions"]'), result.data.reactions);
      else if (result.status === 404) chatGone();
      else alert(errorText(result));
    }

    // Edit: the body becomes a textarea; Enter saves, Escape cancels.
    function startEdit(item) {
      if (item.classList.contains("editing")) return;
      const body = item.querySelector('[data-role="body"]');
      const original = body.textContent;
      const editor = el("textarea", { class: "input", rows: 3, maxLength: 10000 });
      editor.value = original;
      const errors = el("ul", { class: "errorlist", "data-errors-for": "body" });
      const form = el(
        "form",
        { class: "edit-form field", noValidate: true },
        editor,
        errors,
        el(
          "div",
          { class: "form-actions" },
          el("button", { type: "submit", class: "btn btn-primary btn-small" }, gettext("Save")),
          el("button", { type: "button", class: "btn btn-ghost btn-small", "data-action": "cancel-edit" }, gettext("Cancel"))
        )
      );
      const cancel = () => {
        item.classList.remove("editing");
        form.replaceWith(body);
      };
      form.addEventListener("click", (event) => {
        if (event.target.closest('[data-action="cancel-edit"]')) cancel();
      });
      editor.addEventListener("keydown", (event) => {
        if (event.key === "Escape") cancel();
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const result = await api("PATCH", `${base}/messages/${item.dataset.messageId}/`, { body: editor.value });
        if (result.ok) {
          item.classList.remove("editing");
          upsertMessage(result.data);
        } else if (result.status === 404) {
          chatGone();
        } else {
          showErrors(form, result.status === 400 ? result.data : { body: [errorText(result)] });
        }
      });
      item.classList.add("editing");
      body.replaceWith(form);
      editor.focus();
    }

    thread.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      const item = button && button.closest("li[data-message-id]");
      if (!item || gone) return;
      if (button.dataset.action === "toggle-reaction") toggleReaction(item, button.dataset.emoji);
      else if (button.dataset.action === "edit-message") startEdit(item);
    });

    // Delete for everyone: show what goes with it, confirm, then DELETE with a fresh
    // Idempotency-Key. A network failure is retried with the same key, so it deletes once.
    room.querySelector('[data-action="delete-chat"]')?.addEventListener("click", async () => {
      let question = interpolate(gettext("Delete “%(name)s” for everyone? This cannot be undone."), { name: chatName }, true);
      try {
        const detail = await api("GET", `${base}/`);
        if (detail.status === 404) return chatGone();
        if (detail.ok && detail.data.counts) {
          const c = detail.data.counts;
          const members = interpolate(ngettext("%(count)s member", "%(count)s members", c.members), { count: c.members }, true);
          const messages = interpolate(ngettext("%(count)s message", "%(count)s messages", c.messages), { count: c.messages }, true);
          const reactions = interpolate(ngettext("%(count)s reaction", "%(count)s reactions", c.reactions), { count: c.reactions }, true);
          question =
            interpolate(gettext("Delete “%(name)s” for all %(members)s?"), { name: chatName, members }, true) +
            "\n\n" +
            interpolate(gettext("This also deletes %(messages)s and %(reactions)s. It cannot be undone."), { messages, reactions }, true);
        }
      } catch (err) {
        /* ask without the counts */
      }
      if (!confirm(question)) return;
      const key = newIdempotencyKey();
      for (let attempt = 0; attempt < 3; attempt += 1) {
        try {
          const result = await api("DELETE", `${base}/`, undefined, { "Idempotency-Key": key });
          if (result.ok || result.status === 404) {
            gone = true;
            location.href = "/chats/";
          } else {
            alert(errorText(result));
          }
          return;
        } catch (err) {
          await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
        }
      }
      alert(gettext("Could not reach the server; the chat was not deleted. Try again."));
    });

    room.querySelector('[data-action="leave-chat"]')?.addEventListener("click", async () => {
      if (!confirm(interpolate(gettext("Leave “%(name)s”? You will no longer see its messages."), { name: chatName }, true))) return;
      try {
        const result = await api("POST", `${base}/leave/`);
        if (result.ok || result.status === 404) location.href = "/chats/";
        else alert(errorText(result));
      } catch (err) {
        alert(gettext("Could not reach the server; try again."));
      }
    });

    // Open at the latest message.
    thread.lastElementChild?.scrollIntoView({ block: "end" });
  }

  function init() {
    const list = document.getElementById("chat-list");
    if (list) initList(list);
    const room = document.getElementById("chat-room");
    const thread = document.getElementById("chat-messages");
    if (room && thread) initChat(room, thread);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
