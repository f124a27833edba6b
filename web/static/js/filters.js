/*
 * Live listing filters (category and search pages), on top of a page that works without it.
 *
 * Without JavaScript the filters are a GET form with an Apply button, inside a "Filter and sort"
 * disclosure on phones and a sidebar from 900 px; the active filters are chips, each a link to
 * the listing without that filter (web/store/catalog_chips.py). This script:
 *
 * - applies every change at once: it fetches the same GET URL the form would load, swaps in the
 *   results (with the chips) and the form (with the new facet counts), records the URL with
 *   history.pushState (back, forward and reload show the same state), and says the new count in
 *   a polite live region (moved into the drawer while it is open: outside a modal dialog
 *   it would be inert). Chips and "Clear" links are fetched the same way. Focus stays on the
 *   control that had it (found again by name and value), or goes to the next chip or the count
 *   when what had it is gone. If the answer is not a listing (a 400 page), the browser simply
 *   goes to that URL.
 * - on phones, opens the form in a modal <dialog> drawer that slides over the results: focus
 *   moves into it, Escape or "Close" or "Show results" closes it and focus returns to the
 *   "Filter and sort" button. The form is moved into the drawer while it is open and back after.
 */
(() => {
  "use strict";

  const PHONE = window.matchMedia("(max-width: 899.98px)");

  function start() {
    const listing = document.querySelector("[data-listing]");
    const form = document.querySelector("[data-filter-form]");
    const results = document.querySelector("[data-results]");
    if (!listing || !form || !results) return;
    const details = document.querySelector("[data-filters]");
    const panel = document.querySelector("[data-filters-panel]");
    const opener = document.querySelector("[data-filters-open]");
    const drawer = document.querySelector("[data-filter-drawer]");
    const drawerBody = document.querySelector("[data-filter-drawer-body]");
    const status = document.querySelector("[data-filter-status]");
    const path = location.pathname;
    let pending = null;

    function countText() {
      const count = results.querySelector("#results-count");
      return count ? count.textContent.trim() : "";
    }

    function showCount() {
      const text = countText();
      for (const button of document.querySelectorAll("[data-filter-show]")) {
        button.textContent = text ? `Show ${text}` : "Show results";
      }
      return text;
    }

    // The URL the form would load, without empty fields and without the default (first) order,
    // as the server's own links leave them out.
    function urlOf() {
      const url = new URL(form.action, location.href);
      const query = new URLSearchParams();
      const sort = form.elements.namedItem("sort");
      const defaultSort = sort && sort.options && sort.options.length ? sort.options[0].value : null;
      for (const [name, value] of new FormData(form)) {
        if (typeof value !== "string" || !value.trim()) continue;
        if (name === "sort" && value === defaultSort) continue;
        query.append(name, value);
      }
      url.search = query.toString();
      return url.href;
    }

    // What has focus, in a form that survives the swap: a field by name and value, a chip by
    // its place in the row, or anything else (a "Clear" link) as the results count.
    function focusKey() {
      const active = document.activeElement;
      if (!active || active === document.body) return null;
      if (form.contains(active) && active.name) {
        const valued = active.type === "checkbox" || active.type === "radio";
        return {
          selector: `[name="${CSS.escape(active.name)}"]` +
            (valued ? `[value="${CSS.escape(active.value)}"]` : ""),
        };
      }
      if (active.matches(".chip-remove")) {
        return { chip: [...results.querySelectorAll(".chip-remove")].indexOf(active) };
      }
      if (active.matches("[data-filter-link]")) return { chip: -1 };
      return null;
    }

    function restoreFocus(key) {
      if (!key || (document.activeElement && document.activeElement !== document.body)) return;
      let target = null;
      if (key.selector) target = form.querySelector(key.selector);
      else if (key.chip >= 0) {
        const chips = results.querySelectorAll(".chip-remove");
        target = chips[Math.min(key.chip, chips.length - 1)] || null;
      }
      // Inside the open drawer the results are inert: stay in the form.
      const fallback = drawer && drawer.open
        ? form.querySelector("input, select")
        : results.querySelector("#results-count");
      (target || fallback)?.focus();
    }

    function swap(into, from) {
      into.replaceChildren(...Array.from(from.childNodes, (node) => document.importNode(node, true)));
    }

    function announce(text) {
      if (!status) return;
      status.textContent = "";
      requestAnimationFrame(() => {
        status.textContent = text;
      });
    }

    async function update(url, record) {
      if (pending) pending.abort();
      const controller = new AbortController();
      pending = controller;
      listing.setAttribute("aria-busy", "true");
      let response;
      let text;
      try {
        response = await fetch(url, { headers: { Accept: "text/html" }, signal: controller.signal });
        text = await response.text();
      } catch (error) {
        if (error.name !== "AbortError") location.assign(url);
        return;
      }
      if (pending !== controller) return;
      pending = null;
      listing.removeAttribute("aria-busy");
      const page = new DOMParser().parseFromString(text, "text/html");
      const newForm = page.querySelector("[data-filter-form]");
      const newResults = page.querySelector("[data-results]");
      if (!response.ok || !newForm || !newResults) {
        location.assign(url); // an error page says what is wrong, in full
        return;
      }
      const key = focusKey();
      swap(results, newResults);
      swap(form, newForm);
      const newCount = page.querySelector("[data-filter-count]");
      for (const slot of document.querySelectorAll("[data-filter-count]")) {
        if (newCount) swap(slot, newCount);
      }
      if (record && url !== location.href) history.pushState({ filters: true }, "", url);
      restoreFocus(key);
      announce(showCount());
    }

    listing.classList.add("is-enhanced"); // hides Apply: every change applies itself
    form.addEventListener("change", () => update(urlOf(), true));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      update(urlOf(), true);
    });
    listing.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-filter-link]");
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      update(link.href, true);
    });
    window.addEventListener("popstate", () => {
      if (location.pathname === path) update(location.href, false);
    });

    if (!details || !panel || !opener || !drawer || !drawerBody || !drawer.showModal) return;
    opener.hidden = false;
    showCount();
    const statusHome = status ? status.parentNode : null;
    opener.addEventListener("click", () => {
      drawerBody.append(panel);
      if (status) drawer.append(status); // outside the modal drawer, a live region is inert
      drawer.showModal();
      opener.setAttribute("aria-expanded", "true");
    });
    drawer.addEventListener("close", () => {
      details.append(panel);
      if (status && statusHome) statusHome.append(status);
      opener.setAttribute("aria-expanded", "false");
      if (PHONE.matches) opener.focus();
    });
    drawer.addEventListener("click", (event) => {
      if (event.target === drawer) drawer.close(); // a tap on the backdrop
      else if (event.target.closest("[data-filters-close]")) drawer.close();
    });
    PHONE.addEventListener("change", () => {
      if (!PHONE.matches && drawer.open) drawer.close(); // the sidebar shows the form now
    });
    opener.setAttribute("aria-expanded", "false");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
