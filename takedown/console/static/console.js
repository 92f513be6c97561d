// hashguard console: live countdowns, keyboard shortcuts and the decision dialogs. Plain JS, no build step.
// Every action is an ordinary form POST with its CSRF token; this script only opens, fills and submits them.
(function () {
  "use strict";

  function left(due, now) {
    var s = Math.round((due - now) / 1000), late = s < 0, a = Math.abs(s);
    var d = Math.floor(a / 86400), h = Math.floor((a % 86400) / 3600), m = Math.floor((a % 3600) / 60), x = a % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var text = d ? d + " d " + h + " h" : h ? h + " h " + pad(m) + " min" : m ? m + " min " + pad(x) + " s" : x + " s";
    return { text: late ? "overdue " + text : text + " left", late: late };
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var t = left(Date.parse(el.getAttribute("data-due")), now);
      if (el.textContent !== t.text) { el.textContent = t.text; }
      el.classList.toggle("late", t.late);
    });
  }

  function typing(el) {
    if (!el || !el.tagName) { return false; }
    var tag = el.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") { return true; }
    if (tag === "input") { return !/^(checkbox|radio|submit|button|hidden)$/.test(el.type); }
    return el.isContentEditable;
  }

  function openDialog(id) {
    var dlg = document.getElementById(id);
    if (!dlg || dlg.open) { return; }
    dlg.showModal();
    var first = dlg.querySelector("[data-first]") || dlg.querySelector("input[data-reason]") || dlg.querySelector("input, select, textarea, button");
    if (first) { first.focus(); }
  }

  function formOf(dlg) { return dlg.querySelector("form:not([method=dialog])") || dlg.closest("form"); }

  function chooseReason(dlg, n) {
    var radios = dlg.querySelectorAll("input[data-reason]");
    if (n < 1 || n > radios.length) { return false; }
    var r = radios[n - 1];
    r.checked = true;
    r.focus();
    fill(r);
    return true;
  }

  function fill(radio) {
    var dlg = radio.closest("dialog");
    var area = dlg && dlg.querySelector("textarea[name=explanation]");
    if (area) { area.value = radio.value; }
  }

  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("a.ticket-link")); };

  function move(step) {
    var links = rows();
    if (!links.length) { return; }
    var i = links.indexOf(document.activeElement);
    var next = links[Math.max(0, Math.min(links.length - 1, i < 0 ? 0 : i + step))];
    links.forEach(function (a) { a.closest("tr").classList.remove("focused"); });
    next.closest("tr").classList.add("focused");
    next.focus();
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (form) { form.requestSubmit(); return true; }
    return false;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) {
      if (ev.key === "Enter" && ev.target.closest && ev.target.closest("dialog")) {
        var f = formOf(ev.target.closest("dialog"));
        if (f) { ev.preventDefault(); f.requestSubmit(); }
      }
      return;
    }
    var dlg = document.querySelector("dialog[open]");
    if (dlg) {
      if (/^[1-9]$/.test(ev.key) && !typing(ev.target) && chooseReason(dlg, Number(ev.key))) { ev.preventDefault(); return; }
      if (ev.key === "Enter" && !(ev.target.tagName || "").match(/^(TEXTAREA|BUTTON|SELECT)$/)) {
        var form = formOf(dlg);
        if (form) { ev.preventDefault(); form.requestSubmit(); }
      }
      return;
    }
    if (typing(ev.target)) { return; }
    var page = document.body.getAttribute("data-page");
    var done = false;
    switch (ev.key) {
      case "?": openDialog("help"); done = true; break;
      case "q": if (page !== "queue") { window.location.href = "/console/queue"; done = true; } break;
      case "n": done = page === "queue" && submit("claim-next"); break;
      case "j": if (page === "queue") { move(1); done = true; } break;
      case "k": if (page === "queue") { move(-1); done = true; } break;
      case "x":
        if (page === "queue" && document.activeElement && document.activeElement.closest) {
          var tr = document.activeElement.closest("tr");
          var box = tr && tr.querySelector("input[type=checkbox][name=ticket]");
          if (box) { box.checked = !box.checked; done = true; }
        }
        break;
      case "b": if (page === "queue") { openDialog("dlg-bulk"); done = true; } break;
      case "c": done = page === "ticket" && submit("claim-form"); break;
      case "a": if (page === "ticket") { openDialog("dlg-actioned"); done = true; } break;
      case "d": if (page === "ticket") { openDialog("dlg-dismissed"); done = true; } break;
      case "p": if (page === "ticket") { openDialog("dlg-appeal"); done = true; } break;
      case "e": if (page === "ticket") { openDialog("dlg-escalate"); done = true; } break;
      case "r": if (page === "ticket") { openDialog("dlg-report"); done = true; } break;
    }
    if (done) { ev.preventDefault(); }
  });

  document.addEventListener("click", function (ev) {
    var opener = ev.target.closest && ev.target.closest("[data-open]");
    if (opener) { ev.preventDefault(); openDialog(opener.getAttribute("data-open")); return; }
    var closer = ev.target.closest && ev.target.closest("[data-close]");
    if (closer) { ev.preventDefault(); closer.closest("dialog").close(); }
  });

  document.addEventListener("change", function (ev) {
    if (ev.target.matches && ev.target.matches("input[data-reason]")) { fill(ev.target); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    var first = document.querySelector("a.ticket-link");
    if (first && document.body.getAttribute("data-page") === "queue") {
      first.closest("tr").classList.add("focused");
    }
  });
})();
