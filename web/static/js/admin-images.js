// Product images on the staff edit page: drag an image to reorder them. Without this script
// the position numbers (and the Earlier/Later buttons) do the same; the drag only fills the
// numbers in and posts their form (form="image-order"), so the server sees one request either way.
(function () {
  "use strict";

  function renumber(list) {
    var items = list.querySelectorAll("li[data-image-id]");
    for (var i = 0; i < items.length; i++) {
      var input = items[i].querySelector("input[name^='position-']");
      if (input) { input.value = String(i + 1); }
    }
  }

  function itemAt(list, node) {
    while (node && node !== list) {
      if (node.nodeType === 1 && node.hasAttribute("data-image-id")) { return node; }
      node = node.parentNode;
    }
    return null;
  }

  function setUp(list) {
    var form = document.getElementById(list.getAttribute("data-image-order"));
    if (!form) { return; }
    var dragged = null;
    list.classList.add("sortable");
    Array.prototype.forEach.call(list.querySelectorAll("li[data-image-id]"), function (item) {
      item.draggable = true;
      var handle = item.querySelector(".drag-handle");
      if (handle) { handle.hidden = false; }
    });
    list.addEventListener("dragstart", function (event) {
      dragged = itemAt(list, event.target);
      if (!dragged) { return; }
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.getAttribute("data-image-id"));
    });
    list.addEventListener("dragover", function (event) {
      var over = itemAt(list, event.target);
      if (!dragged || !over || over === dragged) { return; }
      event.preventDefault();
      var box = over.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? over.nextSibling : over);
    });
    list.addEventListener("drop", function (event) {
      if (!dragged) { return; }
      event.preventDefault();
      renumber(list);
      form.submit();
    });
    list.addEventListener("dragend", function () {
      if (dragged) { dragged.classList.remove("dragging"); }
      dragged = null;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("ol[data-image-order]"), setUp);
  });
})();
