// Live updates of the overview: when a run ends, the daemon says so on /ui/events (Server-Sent
// Events); the page fetches itself again and swaps its <main> in place, without a reload.
// Without JavaScript a <noscript> meta refresh does the same, less promptly.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var shown = body.getAttribute("data-version");
  var busy = false;
  var again = false;
  var status = document.getElementById("live-status");

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("main");
        var current = document.getElementById("main");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
          shown = fresh.getAttribute("data-version") || shown;
          body.setAttribute("data-version", shown);
          if (status) {
            status.textContent = "Updated at " + new Date().toLocaleTimeString() + ".";
          }
        }
      })
      .catch(function () {
        if (status) {
          status.textContent = "Could not refresh; retrying at the next run.";
        }
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource(url);
  events.addEventListener("run", function (event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (String(data.version) !== shown) {
      refresh();
    }
  });
})();
