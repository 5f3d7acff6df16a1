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

// Uploads: a progress bar, and files dropped on the box. Without this script the form posts
// the chosen files as it is.
(function () {
  var form = document.getElementById("upload");
  if (!form) { return; }
  var input = document.getElementById("files");
  var progress = document.getElementById("progress");
  function send(files) {
    if (!files || files.length === 0) { return; }
    var data = new FormData();
    for (var i = 0; i < files.length; i++) { data.append("files", files[i], files[i].name); }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { progress.value = Math.round(100 * e.loaded / e.total); }
    });
    xhr.addEventListener("load", function () {
      var kind = xhr.getResponseHeader("Content-Type") || "";
      if (kind.indexOf("text/html") !== 0) {
        progress.hidden = true;
        alert(xhr.responseText);
        return;
      }
      // The panel's own page, with what the upload did on top.
      document.open();
      document.write(xhr.responseText);
      document.close();
    });
    xhr.addEventListener("error", function () { progress.hidden = true; alert("The upload failed."); });
    xhr.send(data);
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    send(input.files);
  });
  form.addEventListener("dragover", function (e) { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", function () { form.classList.remove("over"); });
  form.addEventListener("drop", function (e) {
    e.preventDefault();
    form.classList.remove("over");
    send(e.dataTransfer.files);
  });
})();

// The log view follows the log: its list is fetched again every few seconds.
(function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  setInterval(function () {
    fetch(live.dataset.source, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null) { live.innerHTML = html; }
    }).catch(function () {});
  }, 3000);
})();
