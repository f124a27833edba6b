// The operators' pages refresh themselves: every `data-refresh` seconds the page is fetched
// again and the <main> swapped in, unless a form in it is being filled or the tab is hidden.
// Without JavaScript the pages are plain (the browser's reload shows the same thing).
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main) { return; }
  var seconds = Math.max(2, parseInt(main.getAttribute("data-refresh"), 10) || 10);
  var busy = false;

  function editing() {
    var active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function refresh() {
    if (busy || document.hidden || editing()) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (fresh) {
          main.innerHTML = fresh.innerHTML;
          main.setAttribute("data-refreshed", new Date().toISOString());
        }
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, seconds * 1000);
})();
