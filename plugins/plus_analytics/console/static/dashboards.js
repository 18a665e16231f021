// Draws every chart of the dashboards page from the figure specs the server embedded (plotly.js, served
// from the plotly package; no CDN). A drawn chart's card gets data-rendered="true".
(function () {
  "use strict";
  function draw() {
    var specs = JSON.parse(document.getElementById("charts-data").textContent);
    specs.forEach(function (spec) {
      var div = document.getElementById("chart-" + spec.id);
      if (!div) { return; }
      Plotly.newPlot(div, spec.figure.data, spec.figure.layout, {displaylogo: false, responsive: true})
        .then(function () { div.parentElement.dataset.rendered = "true"; });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
