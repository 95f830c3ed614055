// The period page's chart: spend by provider (bars) and tier (stacks), from the JSON the page
// carries (#spend-data); the table under it has the same figures for those who cannot see it.
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("spend-data");
    var canvas = document.getElementById("spend-chart");
    if (!data || !canvas || typeof Chart === "undefined") return;
    var spend = JSON.parse(data.textContent);
    var colours = ["#1f6f8b", "#e07a1f", "#4c9a2a", "#8e44ad", "#c0392b", "#7f8c8d"];
    Chart.defaults.font.size = 14;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: spend.labels,
        datasets: spend.datasets.map(function (set, i) {
          return {
            label: set.label,
            data: set.data.map(Number),
            backgroundColor: colours[i % colours.length],
          };
        }),
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: true, ticks: { callback: function (v) { return spend.currency + v; } } }, y: {
            stacked: true,
            ticks: {
              // A phone has room for a short name; the table under the chart gives it whole.
              callback: function (value) {
                var name = this.getLabelForValue(value);
                return name.length > 8 ? name.slice(0, 7) + "…" : name;
              },
            },
          },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return ctx.dataset.label + ": " + spend.currency + ctx.parsed.x.toFixed(2);
              },
            },
          },
        },
      },
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
