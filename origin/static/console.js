// Vouch console: follows the live event stream (`/console/events`, the API's stream for this
// session) and shows status changes in place; announces swapped-in results to screen readers.
// Everything works without it (pages are server-rendered); it only keeps them current.
(function () {
  "use strict";
  var LABELS = { draft: "Not active yet", active: "Active", suspended: "Suspended", revoked: "Revoked" };

  function announce(text) {
    var live = document.getElementById("live");
    if (live) { live.textContent = text; }
  }

  function apply(agentId, status, version) {
    if (typeof version === "number") {
      document.querySelectorAll('[data-version-of="' + agentId + '"]').forEach(function (el) {
        el.textContent = String(version);
      });
    }
    document.querySelectorAll('[data-status-of="' + agentId + '"]').forEach(function (el) {
      el.textContent = LABELS[status] || status;
      el.className = "status status-" + status;
    });
    document.querySelectorAll('[data-agent="' + agentId + '"]').forEach(function (el) {
      el.setAttribute("data-status", status);
    });
  }

  function follow(url) {
    var source = new EventSource(url);
    source.addEventListener("passport.status_changed", function (event) {
      var envelope;
      try { envelope = JSON.parse(event.data); } catch (_) { return; }
      var data = envelope.data || {};
      if (/^ap_[0-9a-f]{32}$/.test(data.agent_id || "") && LABELS[data.new_status]) {
        apply(data.agent_id, data.new_status, data.version);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var url = document.body.getAttribute("data-stream");
    if (url && window.EventSource) { follow(url); }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var note = event.target.querySelector("[data-announce]");
    if (note) { announce(note.textContent); }
  });
})();
