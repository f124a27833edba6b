/*
 * The product page's variant picker, in place. Without JavaScript the picker is a GET form that
 * reloads the page with the choice (web/store/catalog_picker.py); this script applies the same
 * rule at once, from the JSON in #picker-data:
 *
 *   {axes: ["colour", "size"], names: {axis: "colour"}, labels: {axis: {value: label}},
 *    variants: [{sku, key: {axis: value}, price: "€25.00" | null, stock, in_stock}]}
 *
 * Choices cascade in axis order: a value is disabled when no variant has it together with the
 * values chosen on the earlier axes ("Not available in Red"), or when all such variants are
 * sold out ("Out of stock"). A later choice that no longer fits is cleared. Once every axis has
 * a value, the chosen variant's price, stock and SKU replace the product's, the SKU goes into the
 * add-to-cart form (whose button is enabled only while an in-stock variant is chosen), and the URL
 * records the choice so it can be shared or reloaded.
 */
(() => {
  "use strict";

  function start() {
    const form = document.querySelector("[data-picker]");
    const source = document.getElementById("picker-data");
    if (!form || !source) return;
    const data = JSON.parse(source.textContent);
    if (data.variants.length < 2) return; // one variant: nothing to choose, the page says it all

    const price = document.querySelector("[data-picker-price]");
    const stock = document.querySelector("[data-picker-stock]");
    const skuText = document.querySelector("[data-picker-sku-text]");
    const skuField = document.querySelector("[data-picker-sku]");
    const hint = document.querySelector("[data-picker-hint]");
    const addButton = document.querySelector("[data-add-to-cart] button[type=submit]");
    const productPrice = price ? price.textContent : "";
    const productStock = stock ? stock.textContent : "";
    const productInStock = stock ? stock.classList.contains("stock-in") : false;
    const skuPrompt = "choose an option";

    const radios = (axis) => form.querySelectorAll(`input[type="radio"][name="${CSS.escape(axis)}"]`);

    function matches(variant, choice) {
      return Object.entries(choice).every(([axis, value]) => variant.key[axis] === value);
    }

    function refresh() {
      const choice = {};
      for (const axis of data.axes) {
        const pool = data.variants.filter((variant) => matches(variant, choice));
        const before = Object.entries(choice)
          .map(([a, value]) => data.labels[a][value])
          .join(", ");
        for (const radio of radios(axis)) {
          const matching = pool.filter((variant) => variant.key[axis] === radio.value);
          let reason = "";
          if (!matching.length) reason = before ? `Not available in ${before}` : "Not available";
          else if (!matching.some((variant) => variant.in_stock)) reason = "Out of stock";
          radio.disabled = Boolean(reason);
          if (reason) radio.checked = false;
          const label = radio.closest("label");
          if (label) {
            label.classList.toggle("is-disabled", Boolean(reason));
            const why = label.querySelector(".picker-reason");
            if (why) why.textContent = reason;
          }
        }
        const checked = form.querySelector(
          `input[type="radio"][name="${CSS.escape(axis)}"]:checked`,
        );
        if (checked) choice[axis] = checked.value;
      }
      return choice;
    }

    function show(choice) {
      const missing = data.axes.filter((axis) => !(axis in choice));
      let variant = null;
      if (!missing.length) {
        const found = data.variants.filter((v) => matches(v, choice));
        variant = found.find((v) => v.in_stock) || found[0] || null;
      }
      if (price) price.textContent = variant ? variant.price || "Unavailable" : productPrice;
      if (stock) {
        const inStock = variant ? variant.stock > 0 : productInStock;
        stock.textContent = variant
          ? variant.stock > 0
            ? `${variant.stock} in stock`
            : "Out of stock"
          : productStock;
        stock.classList.toggle("stock-in", inStock);
        stock.classList.toggle("stock-out", !inStock);
      }
      if (skuText) skuText.textContent = variant ? variant.sku : skuPrompt;
      if (skuField) skuField.value = variant ? variant.sku : "";
      // No variant chosen, or a sold-out one: nothing to add.
      if (addButton) addButton.disabled = !variant || !variant.in_stock;
      if (hint) {
        hint.textContent = missing.length
          ? `Choose a ${missing.map((axis) => data.names[axis]).join(" and a ")} first.`
          : "";
      }
      const url = new URL(location.href);
      url.search = new URLSearchParams(choice).toString();
      history.replaceState(null, "", url);
    }

    form.classList.add("is-enhanced"); // hides "Show this choice": choosing is instant now
    form.addEventListener("change", () => show(refresh()));
    form.addEventListener("submit", (event) => event.preventDefault());
    show(refresh());
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
