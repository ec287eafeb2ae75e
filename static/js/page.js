// Small behaviours any page may use, declared in markup so no template needs inline script or
// inline style (the Content-Security-Policy allows neither):
//   <form data-confirm="Question?">        asks before submitting
//   <button data-copy="#element-id">       copies that input's value, then says "Copied"
//   <input data-select-on-focus>           selects its text on focus
//   <span data-width="42">                 width: 42% (set through the DOM, which CSP allows)
//   <button data-toggle="#id" aria-expanded> opens/closes that element (class "is-open")
// It also registers the service worker (<body data-service-worker="URL">) for the PWA.
// Content that htmx swaps in gets the same treatment (htmx:load).
(function () {
  "use strict";

  function enhance(root) {
    root.querySelectorAll("form[data-confirm]").forEach((form) => {
      if (form.dataset.confirmReady) return;
      form.dataset.confirmReady = "1";
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    root.querySelectorAll("button[data-copy]").forEach((button) => {
      if (button.dataset.copyReady) return;
      button.dataset.copyReady = "1";
      button.addEventListener("click", () => {
        const source = document.querySelector(button.dataset.copy);
        if (!source) return;
        navigator.clipboard.writeText(source.value).then(() => {
          button.textContent = button.dataset.copied || gettext("Copied");
        });
      });
    });
    root.querySelectorAll("input[data-select-on-focus]").forEach((input) => {
      input.addEventListener("focus", () => input.select());
    });
    root.querySelectorAll("button[data-toggle]").forEach((button) => {
      if (button.dataset.toggleReady) return;
      button.dataset.toggleReady = "1";
      button.addEventListener("click", () => {
        const target = document.querySelector(button.dataset.toggle);
        if (!target) return;
        const open = !target.classList.contains("is-open");
        target.classList.toggle("is-open", open);
        button.setAttribute("aria-expanded", open ? "true" : "false");
      });
    });
    root.querySelectorAll("[data-width]").forEach((element) => {
      element.style.width = `${Number(element.dataset.width) || 0}%`;
    });
  }

  document.addEventListener("htmx:load", (event) => enhance(event.target));
  const worker = document.body && document.body.dataset.serviceWorker;
  if (worker && "serviceWorker" in navigator) {
    navigator.serviceWorker.register(worker, { scope: "/" }).catch(() => {});
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => enhance(document));
  } else {
    enhance(document);
  }
})();
