// Live preview: which recent papers the interests typed so far would have matched.
// Built with textContent only, so a paper title can never become markup.
(function () {
  "use strict";
  var box = document.getElementById("interests");
  var list = document.getElementById("preview-list");
  var status = document.getElementById("preview-status");
  var zone = document.getElementById("timezone");
  if (zone && !zone.value && window.Intl) {
    zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }
  if (!box || !list || !status) { return; }
  var timer = null;
  var asked = 0;

  function query() {
    var params = new URLSearchParams();
    var any = false;
    box.querySelectorAll("input, textarea").forEach(function (field) {
      params.append(field.name, field.value);
      if (field.name !== "interest_name" && field.value.trim()) { any = true; }
    });
    return any ? params : null;
  }

  function show(data) {
    list.replaceChildren();
    if (data.errors && Object.keys(data.errors).length) {
      status.textContent = Object.values(data.errors)[0];
      return;
    }
    status.textContent = data.papers.length
      ? data.matched + " of the last " + data.looked_at + " papers match; the best:"
      : "None of the last " + data.looked_at + " papers match yet.";
    data.papers.forEach(function (paper) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = paper.url;
      link.rel = "noopener noreferrer";
      link.textContent = paper.title;
      var why = document.createElement("span");
      why.className = "why";
      why.textContent = paper.interest + ": " + paper.reason;
      item.append(link, why);
      list.append(item);
    });
  }

  function refresh() {
    var params = query();
    if (!params) { list.replaceChildren(); status.textContent = "Type an interest to see a preview."; return; }
    var mine = ++asked;
    status.textContent = "Looking…";
    fetch("/preview?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) { if (mine === asked) { show(data); } })
      .catch(function () { if (mine === asked) { status.textContent = "The preview is not available right now."; } });
  }

  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  refresh();
})();
