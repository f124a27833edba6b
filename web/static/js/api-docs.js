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
      deepLinking: true,
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      validatorUrl: null, // never send the document elsewhere to be checked
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
