// The dashboard's one script, served by the relay itself (the pages' Content-Security-Policy
// allows no other and no inline script). It only adds comfort; every page works without it:
// - <time datetime> elements show the browser's local time, the UTC time on hover;
// - buttons with data-copy copy the text of the element they name;
// - a page whose <body> has data-refresh="N" reloads itself every N seconds, unless the
//   person is typing, has selected text, the tab is hidden, or they paused it.
(function () {
  "use strict";

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function localTimes() {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var utc = el.getAttribute("datetime");
      var d = new Date(utc);
      if (isNaN(d.getTime())) {
        return;
      }
      el.textContent =
        d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      el.title = "UTC " + utc + (zone ? " (shown in " + zone + ")" : "");
      el.classList.add("local");
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) {
          return;
        }
        var text = source.textContent;
        var done = function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(source); });
        } else {
          select(source);
          try {
            if (document.execCommand("copy")) {
              done();
            }
          } catch (e) {
            // Selected: the person copies it themselves.
          }
        }
      });
    });
  }

  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function autoRefresh() {
    var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
    if (!seconds || seconds < 5) {
      return;
    }
    var key = "relay-refresh-paused";
    var note = document.createElement("p");
    note.className = "muted refresh-note";
    note.id = "refresh-note";
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.id = "refresh-toggle";
    var paused = sessionStorage.getItem(key) === "1";
    var show = function () {
      note.firstChild.textContent = paused
        ? "Auto-refresh paused. "
        : "This page refreshes itself every " + seconds + " s. ";
      toggle.textContent = paused ? "Resume" : "Pause";
    };
    note.appendChild(document.createTextNode(""));
    note.appendChild(toggle);
    var main = document.querySelector("main");
    if (main) {
      main.appendChild(note);
    }
    show();
    toggle.addEventListener("click", function () {
      paused = !paused;
      sessionStorage.setItem(key, paused ? "1" : "0");
      show();
    });
    var busy = function () {
      var active = document.activeElement;
      var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) &&
        active.id !== "refresh-toggle";
      var selected = String(window.getSelection() || "").length > 0;
      return paused || typing || selected || document.visibilityState !== "visible";
    };
    var tick = function () {
      if (busy()) {
        setTimeout(tick, 5000);
      } else {
        window.location.reload();
      }
    };
    setTimeout(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    copyButtons();
    autoRefresh();
  });
})();
