// hybridvoice dashboard: live parts of the page over server-sent events (GET /ui/events).
// The server sends HTML fragments it rendered and escaped; each replaces the element whose
// id it names. No other script, no third-party code.
"use strict";
(function () {
  var page = document.body.getAttribute("data-stream");
  if (!page || !window.EventSource) { return; }
  var state = document.getElementById("stream-state");
  var source = new EventSource("/ui/events?page_name=" + encodeURIComponent(page));
  source.addEventListener("update", function (event) {
    var parts = JSON.parse(event.data);
    Object.keys(parts).forEach(function (id) {
      var element = document.getElementById(id);
      if (element) { element.innerHTML = parts[id]; }
    });
    if (state) { state.hidden = false; }
  });
  source.addEventListener("error", function () { if (state) { state.hidden = true; } });
})();
