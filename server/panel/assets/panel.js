// yadokari's control panel: the permission badge follows the checkboxes before Apply.
// Everything works without this script; it only asks the server's gate about the mode the
// ticked boxes make, and shows the answer at once.
"use strict";
(function () {
  var form = document.getElementById("permissions");
  if (!form) { return; }
  var boxes = form.querySelectorAll("input[name=bit]");
  var octal = document.getElementById("octal");
  var verdict = document.getElementById("verdict");
  var why = document.getElementById("why");
  var asked = 0;
  function mode() {
    var m = 0;
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked) { m += parseInt(boxes[i].value, 10); }
    }
    return m;
  }
  function update() {
    var m = mode();
    var text = m.toString(8);
    while (text.length < 4) { text = "0" + text; }
    octal.textContent = text;
    var mine = ++asked;
    var url = "/verdict?path=" + encodeURIComponent(form.dataset.path) + "&mode=" + text;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (body) {
      if (body === null || mine !== asked) { return; }
      var lines = body.split("\n");
      var badge = document.createElement("span");
      badge.className = "badge " + lines[0];
      badge.textContent = lines[1];
      badge.title = lines[2] || "";
      verdict.replaceChildren(badge);
      why.textContent = text + " → " + (lines[2] || "");
    }).catch(function () {});
  }
  for (var i = 0; i < boxes.length; i++) {
    boxes[i].addEventListener("change", update);
  }
})();
