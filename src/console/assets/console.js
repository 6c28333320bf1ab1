// callbackd console: shows times in the viewer's own zone too (the server knows UTC and
// the contact's zone), and keeps live parts from polling while the tab is hidden. No inline scripts anywhere: the Content-Security-Policy forbids them.
(function () {
  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localised) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      var span = document.createElement("span");
      span.className = "muted viewer-time";
      span.textContent = " (yours: " + d.toLocaleString() + ")";
      el.after(span);
      el.dataset.localised = "1";
    });
  }
  // Live parts ([data-live]: the overview's figures, the lists, the throughput chart) poll
  // in place; not while the tab is hidden, and at once when it is shown again.
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (document.hidden && e.detail.elt.hasAttribute("data-live")) e.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-live]").forEach(function (el) { window.htmx.trigger(el, "refresh"); });
  });
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localise(e.target); });
})();
