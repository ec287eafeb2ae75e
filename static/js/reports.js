// Reports: draws each <canvas data-chart="name"> from the page's json_script data with the
// vendored Chart.js (static/vendor/chartjs), and shows durations in seconds as "1 h 5 min".
(function () {
  "use strict";

  function read(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function duration(seconds) {
    if (seconds === "" || seconds === null || Number.isNaN(Number(seconds))) return "—";
    let s = Math.round(Number(seconds));
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    const parts = [];
    if (d) parts.push(interpolate(gettext("%(days)s d"), { days: d }, true));
    if (h) parts.push(interpolate(gettext("%(hours)s h"), { hours: h }, true));
    if (m && !d) parts.push(interpolate(gettext("%(minutes)s min"), { minutes: m }, true));
    if (!d && !h && (s || !parts.length)) parts.push(interpolate(gettext("%(seconds)s s"), { seconds: s }, true));
    return parts.join(" ");
  }

  document.querySelectorAll("[data-seconds]").forEach((element) => {
    if (element.dataset.seconds !== "") element.textContent = duration(element.dataset.seconds);
  });

  const data = read("report-data");
  const labels = read("report-labels") || {};
  if (!data || typeof window.Chart === "undefined") return;
  const palette = ["#4f46e5", "#16a34a", "#f59e0b", "#dc2626", "#0891b2", "#9333ea", "#64748b"];

  function bar(canvas, categories, datasets, options) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: categories,
        datasets: datasets.map((set, i) => ({ backgroundColor: palette[i % palette.length], ...set })),
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false, ...(options || {}) },
    });
  }

  const draw = {
    "by-channel": (canvas, rows) =>
      bar(canvas, rows.map((r) => r.label), [{ label: labels.conversations, data: rows.map((r) => r.conversations) }]),
    "by-agent": (canvas, rows) =>
      bar(canvas, rows.map((r) => r.agent || labels.unassigned), [
        { label: labels.conversations, data: rows.map((r) => r.conversations) },
        { label: labels.answered, data: rows.map((r) => r.answered) },
        { label: labels.closed, data: rows.map((r) => r.closed) },
      ]),
    "messages-per-day": (canvas, rows) =>
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: rows.map((r) => r.day),
          datasets: [
            { label: labels.inbound, data: rows.map((r) => r.inbound), borderColor: palette[0], pointRadius: 0 },
            { label: labels.outbound, data: rows.map((r) => r.outbound), borderColor: palette[1], pointRadius: 0 },
          ],
        },
        options: { responsive: true, maintainAspectRatio: false, animation: false },
      }),
    "deal-funnel": (canvas, rows) =>
      bar(
        canvas,
        rows.map((r) => r.stage),
        [
          { label: labels.deals, data: rows.map((r) => r.deals) },
          { label: labels.won, data: rows.map((r) => r.won) },
        ],
        { indexAxis: "y" },
      ),
    "won-amounts": (canvas, rows) => {
      const periods = [...new Set(rows.map((r) => r.period))];
      const currencies = [...new Set(rows.map((r) => r.currency))];
      return bar(
        canvas,
        periods,
        currencies.map((currency) => ({
          label: currency,
          data: periods.map((p) => {
            const row = rows.find((r) => r.period === p && r.currency === currency);
            return row ? Number(row.amount) : 0;
          }),
        })),
      );
    },
  };

  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const name = canvas.dataset.chart;
    if (draw[name] && data[name]) {
      canvas.chart = draw[name](canvas, data[name]);
      canvas.dataset.drawn = "1";
    }
  });
})();
