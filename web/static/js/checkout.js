/*
 * Checkout and its confirmation, enhanced. Without JavaScript both pages work as they are
 * (web/store/checkout.py, web/store/orders.py); this script only makes them quicker:
 *
 * - the checkout's totals follow the chosen shipping method at once, from the totals the page
 *   computed for every method (#checkout-totals: {code: {subtotal, shipping, tax, total}}), so
 *   the "Update totals" button is hidden;
 * - "Place order" is disabled after the first click (the form's idempotency token would turn a
 *   second submit into the same order anyway), and enabled again when the page comes back from
 *   the history cache;
 * - the confirmation page asks for itself again every few seconds while the payment is being
 *   processed, and swaps in the new status (a live region announces it).
 */
(() => {
  "use strict";

  function checkout() {
    const form = document.querySelector("[data-checkout]");
    const source = document.getElementById("checkout-totals");
    if (!form) return;
    const totals = source ? JSON.parse(source.textContent) : {};
    const place = form.querySelector("[data-place-order]");
    const placeText = place ? place.textContent : "";

    function showTotals() {
      const chosen = form.querySelector('input[name="shipping_method"]:checked');
      const sums = chosen ? totals[chosen.value] : null;
      if (!sums) return;
      for (const [name, text] of Object.entries(sums)) {
        const cell = form.querySelector(`[data-total="${name}"]`);
        if (cell) cell.textContent = text;
      }
    }

    form.classList.add("is-enhanced"); // hides "Update totals": the totals follow the choice
    form.addEventListener("change", (event) => {
      if (event.target.name === "shipping_method") showTotals();
    });

    let placing = false;
    form.addEventListener("submit", (event) => {
      if (event.submitter && event.submitter.name === "action") return; // "Update totals"
      if (placing) {
        event.preventDefault();
        return;
      }
      placing = true;
      // After this turn: a button disabled now would be left out of the submitted form.
      setTimeout(() => {
        if (!place) return;
        place.disabled = true;
        place.textContent = "Placing your order…";
      }, 0);
    });
    window.addEventListener("pageshow", (event) => {
      if (!event.persisted || !place) return; // back from the history cache: usable again
      placing = false;
      place.disabled = false;
      place.textContent = placeText;
    });
    showTotals();
  }

  function confirmation() {
    const region = document.querySelector("[data-order-status-region]");
    if (!region || !region.querySelector('[data-order-status="pending"]')) return;
    let tries = 0;
    const timer = setInterval(async () => {
      tries += 1;
      if (tries > 60) clearInterval(timer); // two minutes: the page says to come back later
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("[data-order-status]");
        if (!fresh || fresh.dataset.orderStatus === "pending") return;
        clearInterval(timer);
        region.replaceChildren(document.importNode(fresh, true));
      } catch {
        // offline for a moment: the next try may work
      }
    }, 2000);
  }

  function start() {
    checkout();
    confirmation();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
