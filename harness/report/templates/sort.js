(function () {
  "use strict";
  // Sort key of a cell: numbers from data-v, text otherwise; an empty data-v (missing value) sorts last.
  function key(cell) {
    if (!cell) return [2, ""];
    var v = cell.getAttribute("data-v");
    if (v !== null) {
      if (v === "") return [2, ""];
      var f = parseFloat(v);
      if (!isNaN(f)) return [0, f];
    }
    return [1, (cell.textContent || "").trim().toLowerCase()];
  }
  function compare(a, b, asc) {
    if (a[0] === 2 || b[0] === 2) return a[0] === b[0] ? 0 : (a[0] === 2 ? 1 : -1);
    if (a[0] !== b[0]) return a[0] - b[0];
    var r = a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
    return asc ? r : -r;
  }
  // The first click on a column sorts it best first: data-best="desc" (higher is better), "asc"
  // (lower is better, ranks) or "target:X" (closer to X is better, by distance); later clicks toggle.
  function sortBy(table, col, th) {
    var current = th.getAttribute("aria-sort");
    var best = th.getAttribute("data-best") || "asc";
    var target = best.indexOf("target:") === 0 ? parseFloat(best.slice(7)) : null;
    var asc = current ? current !== "ascending" : best !== "desc";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) {
      var k = key(r.cells[col]);
      if (target !== null && k[0] === 0) k = [0, Math.abs(k[1] - target)];
      return [k, i, r];
    });
    keyed.sort(function (x, y) { return compare(x[0], y[0], asc) || x[1] - y[1]; });
    keyed.forEach(function (k) { body.appendChild(k[2]); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = th.title || "Click to sort";
      th.addEventListener("click", function () { sortBy(table, col, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, col, th); }
      });
    });
  });
})();
