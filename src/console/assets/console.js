// hookd console: the one bit of script. Buttons with data-copy="ID" copy that element's
// text to the clipboard. Everything else works without JavaScript.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  navigator.clipboard.writeText(source.textContent).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});

// Topic search: an input with data-topic-search="ID" (hidden until this script shows it)
// hides the topics under ID whose names do not contain what is typed, and groups left empty.
document.querySelectorAll("[data-topic-search]").forEach(function (input) {
  var root = document.getElementById(input.getAttribute("data-topic-search"));
  if (!root) return;
  input.hidden = false;
  input.addEventListener("input", function () {
    var needle = input.value.trim().toLowerCase();
    root.querySelectorAll("[data-topic]").forEach(function (item) {
      var name = item.getAttribute("data-topic").toLowerCase();
      item.classList.toggle("hidden-by-search", needle !== "" && name.indexOf(needle) < 0);
    });
    root.querySelectorAll("[data-group]").forEach(function (group) {
      var shown = group.querySelector("[data-topic]:not(.hidden-by-search)");
      group.classList.toggle("hidden-by-search", !shown);
    });
  });
});
