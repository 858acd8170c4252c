// Live preview: which recent papers each interest typed so far would have matched.
// Built with textContent only, so a paper title can never become markup.
(function () {
  "use strict";
  var zone = document.getElementById("timezone");
  if (zone && !zone.value && window.Intl) {
    zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  }
  // The day only matters for a weekly digest.
  var cadence = document.getElementById("cadence");
  var weekday = document.getElementById("weekday-field");
  if (cadence && weekday) {
    var showDay = function () { weekday.hidden = cadence.value !== "weekly"; };
    cadence.addEventListener("change", showDay);
    showDay();
  }
  // "Saved." is for the moment of saving, not for a reload or a bookmark.
  if (window.history && /[?&]saved=1/.test(location.search)) {
    history.replaceState(null, "", location.pathname);
  }

  var box = document.getElementById("interests");
  var list = document.getElementById("preview-list");
  var status = document.getElementById("preview-status");
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

  function paperItem(paper) {
    var item = document.createElement("li");
    // The server sends only http(s) URLs; anything else is shown as plain text.
    var safe = typeof paper.url === "string" && /^https?:\/\//i.test(paper.url);
    var link = document.createElement(safe ? "a" : "span");
    if (safe) {
      link.href = paper.url;
      link.rel = "noopener noreferrer";
    }
    link.textContent = paper.title;
    var why = document.createElement("span");
    why.className = "why";
    why.textContent = paper.reason;
    item.append(link, why);
    return item;
  }

  function show(data) {
    list.replaceChildren();
    if (data.errors && Object.keys(data.errors).length) {
      status.textContent = Object.values(data.errors)[0];
      if (!data.interests.length) { return; }
    } else {
      status.textContent = "Among the last " + data.looked_at + " papers:";
    }
    data.interests.forEach(function (interest) {
      var group = document.createElement("li");
      group.className = "group";
      var title = document.createElement("strong");
      title.textContent = interest.name + ": " + (interest.matched
        ? interest.matched + (interest.matched === 1 ? " paper matches" : " papers match")
        : "nothing matches yet");
      group.append(title);
      if (interest.papers.length) {
        var papers = document.createElement("ol");
        interest.papers.forEach(function (paper) { papers.append(paperItem(paper)); });
        group.append(papers);
      }
      list.append(group);
    });
  }

  function refresh() {
    var params = query();
    if (!params) { list.replaceChildren(); status.textContent = "Type an interest to see a preview."; return; }
    var mine = ++asked;
    status.textContent = "Looking…";
    fetch("/preview?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (mine !== asked) { return; }
        if (data.preparing) {
          // The server is still preparing its matching model: say so, ask again soon.
          list.replaceChildren();
          status.textContent = data.message;
          clearTimeout(timer);
          timer = setTimeout(refresh, 2000);
          return;
        }
        show(data);
      })
      .catch(function () { if (mine === asked) { status.textContent = "The preview is not available right now."; } });
  }

  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  refresh();
})();
