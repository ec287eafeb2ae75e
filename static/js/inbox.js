// Switchboard inbox: keeps the conversation list and the open conversation live.
//
// No HTML is built here. On an event the page asks the server for the piece that changed
// (the list partial, one message, the header) and puts it in place, so the templates stay the
// one renderer. Events come from Switchboard.realtime (static/js/realtime.js):
//   message.created        -> refresh the list; in the open conversation, add the message
//   message.updated        -> refresh that message (its status badge, an edit, a deletion)
//   message.reacted        -> refresh that message (its reactions)
//   conversation.updated,
//   conversation.assigned  -> refresh the list; the open conversation's header
//   resync (reconnected)   -> refresh the list, the header and the newest messages
(function () {
  "use strict";

  const byId = (id) => document.getElementById(id);
  const NEAR_BOTTOM_PX = 160;

  // ---------------------------------------------------------------- fetching partials

  async function fetchHTML(url, headers) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: Object.assign({ "HX-Request": "true" }, headers || {}),
    });
    const redirect = response.headers.get("HX-Redirect");
    if (redirect) {
      location.href = redirect; // the session ended: the login page, then back here
      throw new Error("redirected to " + redirect);
    }
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.text();
  }

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  }

  function processed(element) {
    if (window.htmx) window.htmx.process(element);
    return element;
  }

  // Runs `task` now, or once more after the running one if asked again meanwhile: a burst of
  // events costs at most two requests, and the last one always starts after the last event.
  function coalesced(task, delay) {
    let timer = null;
    let running = false;
    let again = false;
    async function run() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await task();
      } catch (err) {
        console.warn("inbox: refresh failed", err);
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(run, delay);
    }
    return schedule;
  }

  // A press that starts on an element and ends on its replacement is no click at all (the
  // browser drops it): a region someone is pressing is replaced only once the press is over.
  let pressed = null; // what a pointer went down on, until it comes up
  const afterPressTasks = new Set(); // deferred while it was down; each runs once when it is up
  document.addEventListener("pointerdown", (event) => (pressed = event.target), true);
  for (const name of ["pointerup", "pointercancel"]) {
    document.addEventListener(
      name,
      () =>
        setTimeout(() => {
          pressed = null;
          const tasks = [...afterPressTasks];
          afterPressTasks.clear();
          for (const task of tasks) task();
        }, 0),
      true,
    );
  }

  function pressedIn(region) {
    return !!pressed && region.contains(pressed);
  }

  function afterPress(task) {
    afterPressTasks.add(task);
  }

  // ---------------------------------------------------------------- the list

  // The list is fetched for what the filter form shows now (not the URL, which htmx updates
  // only after its own request), so a refresh never brings back the previous filters.
  function listURL() {
    const form = byId("inbox-filters");
    const params = new URLSearchParams();
    if (form) {
      for (const [key, value] of new FormData(form)) if (value) params.append(key, value);
    }
    const list = byId("conversation-list");
    const page = list && list.dataset.page;
    if (page && page !== "1") params.set("page", page);
    const query = params.toString();
    return (listPath || location.pathname) + (query ? "?" + query : "");
  }
  let listPath = null; // set when the open conversation is gone: its URL would answer 404

  const refreshList = coalesced(async function () {
    const container = byId("inbox-list");
    if (!container) return;
    const url = listURL();
    const html = await fetchHTML(url, { "HX-Target": "inbox-list" });
    if (url !== listURL()) {
      refreshList(); // the filters changed while we were asking: ask again
      return;
    }
    if (pressedIn(container)) {
      afterPress(refreshList);
      return;
    }
    container.innerHTML = html;
    processed(container);
  }, 120);

  // ---------------------------------------------------------------- the open conversation

  function openConversation() {
    return byId("conversation");
  }

  function isOpen(conversationId) {
    const pane = openConversation();
    return !!pane && String(conversationId) === pane.dataset.conversationId;
  }

  function thread() {
    return byId("thread");
  }

  function nearBottom() {
    const box = thread();
    return !box || box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    const box = thread();
    if (box) box.scrollTop = box.scrollHeight;
  }

  function findMessage(id) {
    const list = byId("messages");
    return list && list.querySelector('li[data-message-id="' + String(id) + '"]');
  }

  // Put server-rendered <li data-message-id> items in place: replace the one with the same id,
  // or insert in id order (new messages go to the bottom).
  function placeMessages(fragment, { stickToBottom = false } = {}) {
    const list = byId("messages");
    if (!list) return;
    const follow = stickToBottom || nearBottom();
    for (const item of Array.from(fragment.querySelectorAll("li[data-message-id]"))) {
      const existing = findMessage(item.dataset.messageId);
      if (existing) {
        existing.replaceWith(item);
      } else {
        const id = Number(item.dataset.messageId);
        const later = Array.from(list.children).find((li) => Number(li.dataset.messageId) > id);
        list.insertBefore(item, later || null);
      }
      processed(item);
    }
    if (follow) scrollToBottom();
  }

  // Fetches of one message run one after another, so an older answer never lands last.
  const messageChains = new Map();

  function refreshMessage(id, { onlyIfShown = false, stickToBottom = false } = {}) {
    const pane = openConversation();
    if (!pane) return Promise.resolve();
    const key = String(id);
    const previous = messageChains.get(key) || Promise.resolve();
    const next = previous
      .then(async () => {
        if (onlyIfShown && !findMessage(key)) return;
        const html = await fetchHTML(pane.dataset.messagesUrl + "?id=" + encodeURIComponent(key));
        placeMessages(parse(html), { stickToBottom });
      })
      .catch((err) => console.warn("inbox: message refresh failed", err));
    messageChains.set(key, next);
    next.then(() => {
      if (messageChains.get(key) === next) messageChains.delete(key);
    });
    return next;
  }

  // After a reconnect: the newest page. Messages already shown are refreshed in place; if the
  // page does not reach what is shown (many arrived meanwhile), the thread restarts from it.
  const resyncMessages = coalesced(async function () {
    const pane = openConversation();
    const list = byId("messages");
    if (!pane || !list) return;
    const fragment = parse(await fetchHTML(pane.dataset.messagesUrl));
    const items = fragment.querySelectorAll("li[data-message-id]");
    const gap =
      items.length > 0 &&
      list.querySelector("li[data-message-id]") &&
      !findMessage(items[0].dataset.messageId) &&
      fragment.querySelector("#load-earlier button");
    if (gap) {
      list.replaceChildren();
      const control = fragment.querySelector("#load-earlier");
      if (control && byId("load-earlier")) byId("load-earlier").replaceWith(processed(control));
    }
    placeMessages(fragment, { stickToBottom: !!gap });
  }, 50);

  const refreshHeader = coalesced(async function () {
    const pane = openConversation();
    const header = byId("conversation-header");
    if (!pane || !header) return;
    const html = await fetchHTML(pane.dataset.headerUrl);
    const fresh = parse(html).querySelector("#conversation-header");
    const current = byId("conversation-header");
    if (!fresh || !current) return;
    // Don't pull the assignee menu from under someone using it; refresh after they are done.
    if (current.contains(document.activeElement) && document.activeElement.tagName === "SELECT") {
      document.activeElement.addEventListener("blur", () => refreshHeader(), { once: true });
      return;
    }
    if (pressedIn(current)) {
      afterPress(refreshHeader);
      return;
    }
    current.replaceWith(fresh);
    processed(fresh);
    refreshReplyBoxForWindow(fresh);
  }, 50);

  // The 24-hour window opened (the client wrote) or closed while the page was open: the reply
  // box switches between free text and the template picker (taken from the page itself).
  async function refreshReplyBoxForWindow(header) {
    const state = header.querySelector("[data-window]");
    const box = byId("reply-box");
    if (!state || !box) return;
    const picking = box.dataset.compose === "template";
    if ((state.dataset.window === "closed") === picking) return;
    if (box.contains(document.activeElement)) return; // not from under someone typing
    const fresh = parse(await fetchHTML(location.pathname)).querySelector("#reply-box");
    const current = byId("reply-box");
    if (fresh && current) {
      current.replaceWith(fresh);
      processed(fresh);
    }
  }

  // Messages arriving in the conversation being looked at are read.
  const markRead = coalesced(async function () {
    const pane = openConversation();
    if (!pane || document.visibilityState !== "visible") return;
    await fetch(pane.dataset.readUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    });
  }, 400);

  // ---------------------------------------------------------------- realtime events

  const realtime = window.Switchboard && window.Switchboard.realtime;
  if (realtime) {
    realtime.on("message.created", (data) => {
      refreshList();
      if (isOpen(data.conversation_id)) {
        refreshMessage(data.id);
        if (data.direction === "in") markRead();
      }
    });
    realtime.on("message.updated", (data) => {
      if (isOpen(data.conversation_id)) refreshMessage(data.id, { onlyIfShown: true });
    });
    // A reaction (the customer's or an agent's) is never a message: refresh the one it is on.
    realtime.on("message.reacted", (data) => {
      if (isOpen(data.conversation_id)) refreshMessage(data.id, { onlyIfShown: true });
    });
    for (const event of ["conversation.updated", "conversation.assigned"]) {
      realtime.on(event, (data) => {
        refreshList();
        if (isOpen(data.id)) refreshHeader();
      });
    }
    realtime.on("resync", refreshAll);
    // Two email conversations became one (a late original joined its replies): whoever has
    // the merged-away one open moves to the one that holds the whole history now.
    realtime.on("conversation.merged", (data) => {
      if (isOpen(data.id)) {
        location.assign(`/inbox/${encodeURIComponent(data.into)}/${location.search}`);
        return;
      }
      refreshList();
    });
    // The number this conversation came through was deleted (with the conversation).
    realtime.on("number.deleted", (data) => {
      const pane = openConversation();
      const mine = pane && pane.dataset.source === `whatsapp:${data.id}`;
      if (mine) listPath = "/inbox/";
      refreshList();
      if (!mine) return;
      const notice = document.createElement("p");
      notice.className = "alert alert-error";
      notice.setAttribute("role", "alert");
      notice.dataset.role = "conversation-removed";
      notice.textContent = gettext(
        "This conversation was removed: its WhatsApp number was deleted. Nothing more can be sent here."
      );
      pane.prepend(notice);
      pane.querySelectorAll("textarea, button, select, input").forEach((control) => {
        control.disabled = true;
      });
    });
  }

  // For other page scripts (static/js/triage.js: labels, saved views, bulk actions).
  window.Switchboard = window.Switchboard || {};
  window.Switchboard.inbox = { refreshList, refreshHeader };

  function refreshAll() {
    refreshList();
    if (openConversation()) {
      refreshHeader();
      resyncMessages();
    }
  }

  // ---------------------------------------------------------------- page behaviour

  // The reply just stored (HX-Trigger from the reply view): same path as the event.
  document.body.addEventListener("inbox:message-stored", (event) => {
    if (event.detail && event.detail.id) refreshMessage(event.detail.id, { stickToBottom: true });
  });

  // A 400 from our forms carries the form with its field errors: show it in place.
  function isFieldErrorResponse(detail) {
    const status = detail.xhr && detail.xhr.status;
    const target = detail.target;
    return (status === 400 || status === 422) && !!target && !!target.closest && !!target.closest(".inbox");
  }
  // With DEBUG on, django-htmx (listening on document) replaces the whole page with any 400
  // answer to show Django's error page; ours is a form with its errors, so it stops here.
  document.body.addEventListener("htmx:beforeOnLoad", (event) => {
    if (isFieldErrorResponse(event.detail)) event.stopPropagation();
  });
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (isFieldErrorResponse(event.detail)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // "Load earlier messages" prepends: keep what the reader was looking at in place.
  let distanceFromBottom = null;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const box = thread();
    if (box && event.detail.target && event.detail.target.id === "messages") {
      distanceFromBottom = box.scrollHeight - box.scrollTop;
    }
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const box = thread();
    if (box && distanceFromBottom !== null && event.detail.target.id === "messages") {
      box.scrollTop = box.scrollHeight - distanceFromBottom;
      distanceFromBottom = null;
    }
  });

  // Filters leave empty values out of the request, so the pushed URL names only what is set.
  document.body.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.verb !== "get" || !event.detail.target || event.detail.target.id !== "inbox-list") {
      return;
    }
    const parameters = event.detail.parameters; // a FormData (behind htmx's proxy)
    for (const key of Array.from(new Set(parameters.keys()))) {
      if (!parameters.getAll(key).some((value) => value)) parameters.delete(key);
    }
  });

  // Chat channels: Enter sends, Shift+Enter makes a new line. Email (data-compose="mail"):
  // Enter is a new line in the text and does nothing in the subject and Cc/Bcc fields (no
  // accidental send); Ctrl+Enter (Cmd+Enter on a Mac) sends.
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (event.key !== "Enter" || event.isComposing || !field.closest) return;
    const form = field.closest("#reply-box");
    if (!form) return;
    const textarea = form.querySelector("textarea[name=body]");
    if (form.dataset.compose === "mail") {
      if (event.ctrlKey || event.metaKey) {
        event.preventDefault();
        if (textarea && textarea.value.trim()) form.requestSubmit();
      } else if (field.tagName === "INPUT") {
        event.preventDefault();
      }
      return;
    }
    if (!event.shiftKey && field === textarea) {
      event.preventDefault();
      if (field.value.trim()) form.requestSubmit();
    }
  });

  // The template picker (the 24-hour window is closed): the chosen template's variables are
  // shown, the others hidden, and its preview follows what is typed into {{1}}, {{2}} ...
  function showTemplate(form) {
    const picker = form.querySelector("[data-template-picker]");
    for (const fields of form.querySelectorAll("[data-template-key]")) {
      fields.hidden = !picker || fields.dataset.templateKey !== picker.value;
      if (!fields.hidden) renderPreview(fields);
    }
  }
  function renderPreview(fields) {
    const values = {};
    for (const input of fields.querySelectorAll("[data-var]")) values[input.dataset.var] = input.value.trim();
    const fill = (kind) =>
      (fields.dataset["text" + kind[0].toUpperCase() + kind.slice(1)] || "").replace(
        /\{\{\s*(\d+)\s*\}\}/g,
        (whole, number) => values[kind + ":" + number] || whole
      );
    const preview = fields.querySelector("[data-template-preview]");
    if (preview) preview.textContent = ["header", "body", "footer"].map(fill).filter(Boolean).join("\n\n");
  }
  document.addEventListener("change", (event) => {
    const picker = event.target.closest && event.target.closest("[data-template-picker]");
    if (picker) showTemplate(picker.form);
  });
  document.addEventListener("input", (event) => {
    const input = event.target.closest && event.target.closest("[data-var]");
    const fields = input && input.closest("[data-template-key]");
    if (fields) renderPreview(fields);
  });

  // "Load remote images" loads this mail's frame again with them allowed (the link targets
  // the frame, so it works without this script too); the notice then says so.
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('[data-action="load-remote-images"]');
    if (!link) return;
    const notice = link.closest('[data-role="remote-images"]');
    if (!notice) return;
    notice.dataset.state = "allowed";
    const state = notice.querySelector('[data-role="remote-images-state"]');
    if (state) state.textContent = link.dataset.allowedText || "";
    link.hidden = true;
  });

  // Back/forward from htmx's history cache or the browser's: what it shows may be old, and the
  // restored filter form shows its first values, so the URL sets them again first.
  function restoreFromURL() {
    const form = byId("inbox-filters");
    if (form) {
      const params = new URLSearchParams(location.search);
      for (const field of Array.from(form.elements)) {
        if (!field.name) continue;
        if (field.type === "checkbox") field.checked = params.getAll(field.name).includes(field.value);
        else if ("value" in field) field.value = params.get(field.name) || "";
      }
      const list = byId("conversation-list");
      if (list) list.dataset.page = params.get("page") || "1";
    }
    refreshAll();
  }
  document.body.addEventListener("htmx:historyRestore", restoreFromURL);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) restoreFromURL();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && openConversation()) {
      const row = document.querySelector(
        '#conversation-list li.is-current.is-unread, #conversation-list li[data-conversation-id="' +
          openConversation().dataset.conversationId +
          '"].is-unread'
      );
      if (row) markRead();
    }
  });

  // ---------------------------------------------------------------- files and quotes (issue 16)
  // Kept apart from the rest of the page's behaviour: the reply box's files (picker, drag and
  // drop, paste), checked against the channel's limits (data-file-limits) before any upload,
  // and "Reply to this message" (the hidden reply_to field and its banner).

  const chosenFiles = new WeakMap(); // reply form -> DataTransfer holding its files

  function replyFileLimits(form) {
    try {
      return JSON.parse(form.dataset.fileLimits || "null");
    } catch (error) {
      return null;
    }
  }

  function formatMegabytes(bytes) {
    const mb = bytes / 1048576;
    return interpolate(gettext("%(size)s MB"), { size: Number.isInteger(mb) ? mb : mb.toFixed(1) }, true);
  }

  function fillTemplate(text, values) {
    return (text || "").replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? values[name] : whole));
  }

  // The same rule as the server (messaging.channels.file_kind): the first kind that takes the
  // type, within its size.
  function replyFileError(form, limits, file) {
    const type = file.type || "application/octet-stream";
    const typed = limits.limits.filter((limit) => !limit.types.length || limit.types.includes(type));
    if (!typed.length) {
      return fillTemplate(form.dataset.errorType, { channel: limits.channel, name: file.name, type: type });
    }
    if (typed.some((limit) => file.size <= limit.max)) return "";
    const largest = typed.reduce((a, b) => (b.max > a.max ? b : a));
    return fillTemplate(form.dataset.errorSize, {
      name: file.name,
      size: formatMegabytes(file.size),
      channel: limits.channel,
      kind: largest.kind,
      limit: formatMegabytes(largest.max),
    });
  }

  function showReplyFileErrors(form, errors) {
    const list = form.querySelector('[data-role="reply-files-errors"]');
    if (!list) return;
    list.replaceChildren(
      ...errors.map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      })
    );
    list.hidden = errors.length === 0;
  }

  function renderReplyFiles(form) {
    const list = form.querySelector('[data-role="reply-files"]');
    const input = form.querySelector('[data-role="reply-file-input"]');
    const held = chosenFiles.get(form);
    if (!list || !input || !held) return;
    input.files = held.files;
    list.replaceChildren(
      ...Array.from(held.files).map((file, index) => {
        const item = document.createElement("li");
        item.className = "reply-file";
        const name = document.createElement("span");
        name.className = "reply-file-name";
        name.textContent = file.name + " · " + formatMegabytes(file.size);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn-link reply-file-remove";
        remove.dataset.fileIndex = String(index);
        remove.setAttribute("aria-label", interpolate(gettext("Remove %(name)s"), { name: file.name }, true));
        remove.textContent = "✕";
        item.append(name, remove);
        return item;
      })
    );
  }

  // Add files to the reply box: each checked; the ones within the limits are kept.
  function addReplyFiles(form, files) {
    const limits = replyFileLimits(form);
    if (!limits) return;
    const held = chosenFiles.get(form) || new DataTransfer();
    chosenFiles.set(form, held);
    const errors = [];
    for (const file of files) {
      const error = replyFileError(form, limits, file);
      if (error) errors.push(error);
      else if (held.items.length >= limits.max_files) {
        errors.push(fillTemplate(form.dataset.errorCount, { count: limits.max_files, channel: limits.channel }));
      } else held.items.add(file);
    }
    const total = Array.from(held.files).reduce((sum, file) => sum + file.size, 0);
    if (limits.total && total > limits.total) {
      errors.push(
        fillTemplate(form.dataset.errorTotal, {
          size: formatMegabytes(total),
          channel: limits.channel,
          limit: formatMegabytes(limits.total),
        })
      );
    }
    showReplyFileErrors(form, errors);
    renderReplyFiles(form);
  }

  function removeReplyFile(form, index) {
    const held = chosenFiles.get(form);
    if (!held) return;
    held.items.remove(index);
    renderReplyFiles(form);
    showReplyFileErrors(form, []);
  }

  function replyForm(element) {
    return element && element.closest ? element.closest("#reply-box[data-file-limits]") : null;
  }

  document.addEventListener("change", (event) => {
    const form = replyForm(event.target);
    if (!form || !event.target.matches('[data-role="reply-file-input"]')) return;
    const picked = Array.from(event.target.files);
    event.target.files = (chosenFiles.get(form) || new DataTransfer()).files; // restore, then add
    addReplyFiles(form, picked);
  });
  document.addEventListener("dragover", (event) => {
    const form = replyForm(event.target);
    if (form && event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
      event.preventDefault();
      form.classList.add("is-dropping");
    }
  });
  document.addEventListener("dragleave", (event) => {
    const form = replyForm(event.target);
    if (form) form.classList.remove("is-dropping");
  });
  document.addEventListener("drop", (event) => {
    const form = replyForm(event.target);
    if (!form || !event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    form.classList.remove("is-dropping");
    addReplyFiles(form, Array.from(event.dataTransfer.files));
  });
  document.addEventListener("paste", (event) => {
    const form = replyForm(event.target);
    const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    if (!form || !files.length) return;
    event.preventDefault();
    addReplyFiles(form, files);
  });

  // "Reply to this message": the hidden reply_to field of the reply box, and its banner.
  function setReplyQuote(messageId, text) {
    const form = document.getElementById("reply-box");
    const banner = form && form.querySelector('[data-role="reply-quote"]');
    if (!banner) return;
    banner.querySelector('input[name="reply_to"]').value = messageId || "";
    banner.querySelector('[data-role="reply-quote-text"]').textContent = text || "";
    banner.hidden = !messageId;
    if (messageId) form.querySelector("textarea").focus();
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target : null;
    if (!target) return;
    const quote = target.closest('[data-role="quote-message"]');
    if (quote) setReplyQuote(quote.dataset.messageId, quote.dataset.quoteText);
    else if (target.closest('[data-role="reply-quote-cancel"]')) setReplyQuote("", "");
    else if (target.closest(".reply-file-remove")) {
      const button = target.closest(".reply-file-remove");
      removeReplyFile(replyForm(button), Number(button.dataset.fileIndex));
    }
  });

  // Opened from a search hit (?message=<id>): that message, marked, in view; else the newest.
  const hit = document.querySelector("#messages .is-search-hit");
  if (hit) hit.scrollIntoView({ block: "center" });
  else scrollToBottom();
})();
