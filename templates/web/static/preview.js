// Keeps the preview's figures current while the provider's events come in: asks every 30 seconds.
(function () {
  "use strict";
  var box = document.getElementById("figures");
  if (!box) return;
  var keys = ["recipients", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"];
  function refresh() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (figures) {
        if (!figures) return;
        keys.forEach(function (key) {
          var cell = document.getElementById("figure-" + key);
          if (cell) cell.textContent = String(figures[key]);
        });
        box.dataset.updated = new Date().toISOString();
      })
      .catch(function () {});
  }
  setInterval(refresh, Number(box.dataset.every || 30000));
})();
