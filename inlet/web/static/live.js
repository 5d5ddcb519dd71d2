// Live updates: the server's SSE stream says only "changed"; this page then fetches its own
// live part again (?fragment=1, rendered under this login) and swaps it in. No reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var dot = document.getElementById("live-status");
  if (!window.EventSource) { return; }
  var busy = false, again = false;

  function refresh() {
    if (!live) { return; }
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (res.redirected || !res.ok) { throw new Error("status " + res.status); }
        return res.text();
      })
      .then(function (html) { live.innerHTML = html; })
      .catch(function () { if (dot) { dot.className = "offline"; } })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/events");
  source.addEventListener("hello", function () {
    if (dot) { dot.className = "online"; }
    refresh();  // whatever changed while the stream was down
  });
  source.addEventListener("changed", refresh);
  source.onerror = function () { if (dot) { dot.className = "offline"; } };
})();
