// Draws each dashboard chart from the JSON the page carries next to its canvas
// (no inline scripts). Chart.js is vendored: see docs/decisions/0031-dashboard-charts.md.
"use strict";

(function () {
  const palette = ["#417690", "#e0a526", "#ba2121", "#5b8c5a", "#8e6bbf", "#d9734e", "#3fa7b5", "#9c9c9c"];

  function draw(canvas) {
    const spec = JSON.parse(document.getElementById(canvas.dataset.config).textContent);
    const datasets = spec.datasets.map(function (dataset, index) {
      const color = palette[index % palette.length];
      return Object.assign({ borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2 }, dataset);
    });
    const horizontal = spec.horizontal;
    const valueAxis = { beginAtZero: true, stacked: spec.stacked, title: { display: !!spec.yTitle, text: spec.yTitle } };
    // Time axes skip labels to fit; a few named bars (versions, keys) keep every label.
    const many = spec.labels.length > 20;
    const labelAxis = { stacked: spec.stacked, ticks: { autoSkip: many, maxRotation: many ? 0 : 30 } };
    new Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: datasets.length > 1 } },
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
      },
    });
    canvas.dataset.rendered = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-config]").forEach(draw);
  });
})();
