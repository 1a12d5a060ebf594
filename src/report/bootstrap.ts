/**
 * The page's own script (plain ES2017, inlined after vega, vega-lite and vega-embed): reads the
 * chart definitions from `#report-charts`, expands compact heatmap matrices into rows, embeds
 * every chart, and records the views in `window.__reportViews` and the outcome in
 * `<html data-charts-ready="N" data-chart-errors="M">` (the browser test waits on these).
 */
export const BOOTSTRAP_JS = `(function () {
  'use strict';
  var root = document.documentElement;
  var el = document.getElementById('report-charts');
  var charts = el ? JSON.parse(el.textContent || '[]') : [];
  var views = {};
  window.__reportViews = views;
  function expand(m) {
    var rows = new Array(m.side * m.side);
    var k = m.scale / m.levels;
    for (var r = 0; r < m.side; r++) {
      for (var c = 0; c < m.side; c++) {
        var i = r * m.side + c;
        rows[i] = { r: r, c: c, v: m.q[i] * k, rl: m.labels[r], cl: m.labels[c] };
      }
    }
    return rows;
  }
  var errors = 0;
  if (typeof vegaEmbed !== 'function') {
    root.setAttribute('data-charts-ready', '0');
    root.setAttribute('data-chart-errors', String(charts.length));
    charts.forEach(function (c) {
      var box = document.getElementById(c.id);
      if (box) box.textContent = 'charts need the inlined vega scripts, which this page lacks';
    });
    return;
  }
  var jobs = charts.map(function (c) {
    var spec = c.spec;
    if (c.matrix) {
      spec.datasets = spec.datasets || {};
      spec.datasets[c.matrix.dataset] = expand(c.matrix);
    }
    return vegaEmbed('#' + c.id, spec, { actions: false, renderer: c.renderer || 'svg', tooltip: true })
      .then(function (res) { views[c.id] = res.view; })
      .catch(function (e) {
        errors++;
        console.error('chart ' + c.id + ' failed: ' + (e && e.message ? e.message : e));
        var box = document.getElementById(c.id);
        if (box) box.textContent = 'this chart failed to render: ' + (e && e.message ? e.message : e);
      });
  });
  Promise.all(jobs).then(function () {
    root.setAttribute('data-chart-errors', String(errors));
    root.setAttribute('data-charts-ready', String(charts.length - errors));
  });
})();
`;
