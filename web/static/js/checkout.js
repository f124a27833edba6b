/*
 * Checkout and the order's payment page, enhanced. Without JavaScript both pages work as they are
 * (web/store/checkout.py, web/store/orders.py); this script only makes them quicker:
 *
 * - the checkout's totals follow the chosen shipping method at once, from the totals the page
 *   computed for every method (#checkout-totals: {code: {subtotal, shipping, tax, total}}), so
 *   the "Update totals" button is hidden;
 * - "Place order" is disabled after the first click (the form's idempotency token would turn a
 *   second submit into the same order anyway), and enabled again when the page comes back from
 *   the history cache;
 * - the order's payment page asks for itself again every two seconds while the payment is
 *   being processed (without JavaScript its "Check again" link does the same), and swaps in
 *   the outcome: thank you, or "Payment declined" with the form to pay with another card,
 *   whose button is disabled after the first click.
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

  // One attempt per click: the form's token makes a second submit the same attempt anyway.
  function payForm(root) {
    const form = root.querySelector("[data-pay-again]");
    const button = form ? form.querySelector("[data-pay-button]") : null;
    if (!form || !button) return;
    let paying = false;
    form.addEventListener("submit", (event) => {
      if (paying) {
        event.preventDefault();
        return;
      }
      paying = true;
      setTimeout(() => {
        button.disabled = true;
        button.textContent = "Paying…";
      }, 0);
    });
  }

  function paymentPage() {
    const section = document.querySelector("[data-order-page]");
    if (!section) return;
    payForm(section);
    if (section.dataset.orderState !== "waiting") return;
    let tries = 0;
    const timer = setInterval(async () => {
      tries += 1;
      if (tries > 60) clearInterval(timer); // two minutes: the "Check again" link stays
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("[data-order-page]");
        if (!fresh || fresh.dataset.orderState === "waiting") return;
        clearInterval(timer);
        const node = document.importNode(fresh, true);
        section.replaceWith(node);
        document.title = page.title;
        payForm(node);
        const heading = node.querySelector("h1");
        if (heading) heading.focus(); // the outcome is read out, and the form is next
      } catch {
        // offline for a moment: the next try may work
      }
    }, 2000);
  }

  function start() {
    checkout();
    paymentPage();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
