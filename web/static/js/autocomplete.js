/*
 * Header search autocomplete. Without JavaScript the search box is a plain GET form to /search;
 * this script adds suggestions from GET /api/v1/search/suggest?q=...&limit=8.
 *
 * - Typing 2 or more characters asks for suggestions after 150 ms of quiet; a skeleton list
 *   shows while the answer is on its way, then the suggestions as links to the products.
 * - Each new request aborts the one before (AbortController), so a slow answer for "ru" can
 *   never replace the answer for "run".
 * - Keyboard: Down/Up move through the suggestions, Enter opens the highlighted one (or
 *   submits the search when none is), Escape closes the list.
 * - ARIA 1.1 combobox (see base.html): the wrapper carries role=combobox and aria-expanded, the
 *   input aria-activedescendant, the list role=listbox with role=option items.
 *
 * The endpoint is public and needs no token, and api.js takes no AbortSignal, so this script
 * uses fetch directly.
 */
(() => {
  "use strict";

  const MIN_CHARS = 2;
  const DELAY_MS = 150;
  const LIMIT = 8;
  const SKELETON_ROWS = 4;

  function enhance(box) {
    const input = box.querySelector("input");
    const list = box.querySelector('[role="listbox"]');
    if (!input || !list) return;
    let timer = null;
    let controller = null;
    let items = [];
    let active = -1;

    function setOpen(open) {
      list.hidden = !open;
      box.setAttribute("aria-expanded", String(open));
      if (!open) highlight(-1);
    }

    function highlight(index) {
      const options = list.querySelectorAll('[role="option"]');
      options.forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
      active = index;
      if (index >= 0 && options[index]) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function showSkeleton() {
      const rows = [];
      for (let i = 0; i < SKELETON_ROWS; i += 1) {
        const row = document.createElement("li");
        row.className = "suggestion-skeleton";
        row.setAttribute("aria-hidden", "true");
        const bar = document.createElement("span");
        bar.className = "skeleton";
        bar.style.width = `${55 + ((i * 17) % 35)}%`;
        row.append(bar);
        rows.push(row);
      }
      items = [];
      list.replaceChildren(...rows);
      list.setAttribute("aria-busy", "true");
      setOpen(true);
    }

    // The typed text in bold at its first match anywhere in the name (not only at the start);
    // only text nodes, never HTML.
    function label(name, typed) {
      const span = document.createElement("span");
      const at = name.toLowerCase().indexOf(typed.toLowerCase());
      if (at < 0) {
        span.textContent = name;
        return span;
      }
      const strong = document.createElement("strong");
      strong.textContent = name.slice(at, at + typed.length);
      span.append(name.slice(0, at), strong, name.slice(at + typed.length));
      return span;
    }

    function showSuggestions(found, typed) {
      list.removeAttribute("aria-busy");
      items = found;
      if (!found.length) {
        list.replaceChildren();
        setOpen(false);
        return;
      }
      list.replaceChildren(
        ...found.map((item, i) => {
          const option = document.createElement("li");
          option.id = `${list.id}-${i}`;
          option.setAttribute("role", "option");
          option.setAttribute("aria-selected", "false");
          const link = document.createElement("a");
          link.href = item.url;
          link.tabIndex = -1; // the input keeps focus; arrows move aria-activedescendant
          link.append(label(item.name, typed));
          option.append(link);
          return option;
        }),
      );
      setOpen(true);
      highlight(-1);
    }

    async function suggest(text) {
      if (controller) controller.abort();
      const mine = new AbortController();
      controller = mine;
      showSkeleton();
      try {
        const query = new URLSearchParams({ q: text, limit: String(LIMIT) });
        const response = await fetch(`/api/v1/search/suggest?${query}`, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          signal: mine.signal,
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const body = await response.json();
        if (controller === mine) showSuggestions(body.items || [], text);
      } catch (error) {
        if (error.name !== "AbortError" && controller === mine) {
          list.removeAttribute("aria-busy");
          setOpen(false); // the form still searches: suggestions are only a shortcut
        }
      }
    }

    input.addEventListener("input", () => {
      clearTimeout(timer);
      const text = input.value.trim();
      if (text.length < MIN_CHARS) {
        if (controller) controller.abort();
        controller = null;
        items = [];
        list.replaceChildren();
        setOpen(false);
        return;
      }
      timer = setTimeout(() => suggest(text), DELAY_MS);
    });

    input.addEventListener("keydown", (event) => {
      const open = !list.hidden && items.length > 0;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (!items.length) return;
        event.preventDefault();
        if (list.hidden) setOpen(true);
        const step = event.key === "ArrowDown" ? 1 : -1;
        const next = active + step;
        highlight(next < -1 ? items.length - 1 : next >= items.length ? -1 : next);
      } else if (event.key === "Enter" && open && active >= 0) {
        event.preventDefault();
        location.assign(items[active].url);
      } else if (event.key === "Escape" && !list.hidden) {
        event.preventDefault();
        setOpen(false);
      }
    });

    // Keep the focus in the input when a suggestion is pressed, so the click lands on the link.
    list.addEventListener("mousedown", (event) => event.preventDefault());
    // Leaving the box cancels what is still on its way: a pending timer or request would
    // otherwise open the suggestions again after the focus has gone.
    input.addEventListener("blur", () => {
      clearTimeout(timer);
      timer = null;
      if (controller) controller.abort();
      controller = null;
      list.removeAttribute("aria-busy");
      setOpen(false);
    });
    input.addEventListener("focus", () => {
      if (items.length) setOpen(true);
    });
  }

  function start() {
    document.querySelectorAll("[data-autocomplete]").forEach(enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
