/*
 * A form that came back with errors opens on its error summary (macros/forms.html
 * error_summary): focused, so screen readers read the list of what to fix and the keyboard
 * starts from its links. The summary carries `autofocus` too; this covers browsers that ignore
 * it on an element that is not a form control. Without JavaScript the summary is still at the
 * top of the form.
 */
(() => {
  "use strict";

  function focusSummary() {
    const summary = document.querySelector("[data-error-summary]");
    if (summary && document.activeElement !== summary) {
      summary.focus();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusSummary);
  } else {
    focusSummary();
  }
})();
