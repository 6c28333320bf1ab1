// callbackd console: shows times in the viewer's own zone too (the server knows UTC and
// the contact's zone). No inline scripts anywhere: the Content-Security-Policy forbids them.
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
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localise(e.target); });
})();
