// /api/v1/docs: start Swagger UI (loaded before this file) on the API's own OpenAPI document.
// No inline script: the page's Content-Security-Policy allows scripts from our origin only.
"use strict";
(function () {
  function start() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") {
      return; // the fallback text stays
    }
    window.SwaggerUIBundle({
      url: root.getAttribute("data-document"),
      domNode: root,
      // Off: a deep link is an <a> inside each operation's <button>, which assistive
      // technology cannot reach (axe-core: nested-interactive).
      deepLinking: false,
      // Off: the highlighter's colours (inline styles) are too faint on its dark background.
      syntaxHighlight: { activated: false },
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      validatorUrl: null, // never send the document elsewhere to be checked
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
  // As Swagger UI draws: its example pickers are <select>s without a label, and its code
  // samples scroll sideways without taking the keyboard's focus; name the one, focus the other.
  function enhance() {
    var pickers = document.querySelectorAll("select.examples-select-element:not([aria-label])");
    for (var i = 0; i < pickers.length; i++) {
      pickers[i].setAttribute("aria-label", "Example");
    }
    var samples = document.querySelectorAll(".highlight-code > pre:not([tabindex])");
    for (var j = 0; j < samples.length; j++) {
      samples[j].setAttribute("tabindex", "0");
    }
  }
  new MutationObserver(enhance).observe(document.documentElement, {
    childList: true,
    subtree: true,
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
