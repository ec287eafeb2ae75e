// The Kanban board: drag a card to another column (HTML5 drag and drop) or pick a stage in the
// card's select (keyboard, phone); either one POSTs the move. Every deal.* event of the company
// re-fetches the board, so everyone sees the same columns without a reload.
(function () {
  "use strict";

  const wrap = document.getElementById("board-wrap");
  const csrf = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      const input = document.querySelector("input[name=csrfmiddlewaretoken]");
      return input ? input.value : "";
    }
  };

  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  if (!wrap) return;

  function move(card, stageId) {
    if (!card || !stageId || card.dataset.stage === String(stageId)) return;
    const body = new URLSearchParams({ stage: stageId });
    const target = wrap.querySelector(`.board-cards[data-drop-stage="${stageId}"]`);
    if (target) target.prepend(card); // at once; the server's answer (and the event) confirm it
    card.dataset.stage = String(stageId);
    fetch(card.dataset.moveUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      body,
      credentials: "same-origin",
    })
      .then((response) => {
        if (!response.ok) throw new Error(String(response.status));
      })
      .catch(() => refresh())
      .finally(() => refresh());
  }

  let timer = null;
  let inFlight = false;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  }
  function load() {
    if (dragged || inFlight) {
      refresh();
      return;
    }
    inFlight = true;
    fetch(wrap.dataset.boardUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then((html) => {
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.getElementById("board");
        const current = document.getElementById("board");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(() => {})
      .finally(() => {
        inFlight = false;
      });
  }

  let dragged = null;
  wrap.addEventListener("dragstart", (event) => {
    const card = event.target.closest && event.target.closest(".deal-card");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.deal);
  });
  wrap.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    wrap.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
  });
  wrap.addEventListener("dragover", (event) => {
    const list = event.target.closest && event.target.closest(".board-cards");
    if (!list || !dragged) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    list.classList.add("drop-target");
  });
  wrap.addEventListener("dragleave", (event) => {
    const list = event.target.closest && event.target.closest(".board-cards");
    if (list && !list.contains(event.relatedTarget)) list.classList.remove("drop-target");
  });
  wrap.addEventListener("drop", (event) => {
    const list = event.target.closest && event.target.closest(".board-cards");
    if (!list) return;
    event.preventDefault();
    list.classList.remove("drop-target");
    const id = event.dataTransfer.getData("text/plain");
    const card = wrap.querySelector(`.deal-card[data-deal="${id}"]`);
    const stage = list.dataset.dropStage;
    dragged = null;
    move(card, stage);
  });
  wrap.addEventListener("change", (event) => {
    const select = event.target;
    if (select.dataset.role !== "stage-select") return;
    move(select.closest(".deal-card"), select.value);
  });

  const pipeline = wrap.dataset.pipeline;
  const realtime = window.Switchboard && window.Switchboard.realtime;
  if (realtime) {
    const onDeal = (data) => {
      if (!data.pipeline_id || String(data.pipeline_id) === pipeline) refresh();
    };
    ["deal.created", "deal.updated", "deal.moved", "deal.deleted", "pipeline.changed"].forEach((name) =>
      realtime.on(name, onDeal),
    );
    realtime.on("resync", refresh);
  }
})();
