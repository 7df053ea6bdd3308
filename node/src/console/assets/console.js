// AMOSKYS console: new alerts appear on the alerts page as they arrive.
// The page works without this script; it only adds rows the server
// rendered (and escaped) to the table, newest first.
(function () {
  "use strict";
  var table = document.getElementById("alerts-live");
  if (!table || !window.EventSource) {
    return;
  }
  var body = table.tBodies[0];
  var max = parseInt(table.getAttribute("data-max") || "200", 10);
  var state = document.getElementById("live-state");
  var empty = document.getElementById("alerts-empty");
  var source = new EventSource(table.getAttribute("data-stream"));
  function say(text) {
    if (state) {
      state.textContent = text;
    }
  }
  source.addEventListener("open", function () {
    say("Live: new alerts appear at the top.");
  });
  source.addEventListener("error", function () {
    say("Live updates paused; reconnecting.");
  });
  source.addEventListener("row", function (e) {
    body.insertAdjacentHTML("afterbegin", e.data);
    while (body.rows.length > max) {
      body.deleteRow(-1);
    }
    if (empty) {
      empty.hidden = true;
    }
  });
})();
