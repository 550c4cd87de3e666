// Draws the dashboard charts with uPlot from /dashboard/data.json; one line per
// model version. Loaded as a file (no inline script) so a strict CSP can apply.
(function () {
  "use strict";

  var REFRESH_MS = 30000;
  var COLORS = ["#2456c9", "#d92d20", "#1d7a46", "#a76300", "#7a2bd9", "#0e7c86", "#5b6474"];
  var root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") {
    return;
  }
  var plots = [];

  function seriesOptions(versions) {
    var series = [{ label: "time (UTC)" }];
    versions.forEach(function (version, index) {
      series.push({
        label: version.label,
        stroke: COLORS[index % COLORS.length],
        width: 2,
        spanGaps: false,
        points: { show: true, size: 4 },
      });
    });
    return series;
  }

  function draw(data) {
    var traffic = data.traffic;
    plots.forEach(function (plot) { plot.destroy(); });
    plots = [];
    root.querySelectorAll(".chart").forEach(function (element) {
      var key = element.getAttribute("data-series");
      element.textContent = "";
      if (!traffic.versions.length) {
        var empty = document.createElement("p");
        empty.className = "empty";
        empty.textContent = "No predictions in this window.";
        element.appendChild(empty);
        return;
      }
      var columns = [traffic.buckets];
      traffic.versions.forEach(function (version) { columns.push(version.series[key]); });
      var options = {
        width: Math.max(element.clientWidth, 300),
        height: 220,
        series: seriesOptions(traffic.versions),
        scales: { x: { time: true } },
        // The server buckets in UTC and the page says so; do not shift to the browser's zone.
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        axes: [{}, { size: 60 }],
        legend: { live: true },
      };
      plots.push(new uPlot(options, columns, element));
    });
  }

  function load() {
    fetch(root.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(draw)
      .catch(function (error) {
        root.setAttribute("data-error", String(error));
      });
  }

  load();
  window.setInterval(load, REFRESH_MS);
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      plots.forEach(function (plot) {
        plot.setSize({ width: Math.max(plot.root.parentNode.clientWidth, 300), height: 220 });
      });
    }, 200);
  });
})();
