// Live pages: the element with data-stream holds the part of the page that changes. It follows
// the server's event stream (server-sent events); where that cannot open, it polls the same
// fragment instead. The badge in the header says which.
"use strict";
(function () {
  const badge = document.getElementById("live-status");
  const LABELS = { sse: "live", poll: "polling", offline: "reconnecting…" };

  function show(mode) {
    if (!badge) return;
    badge.dataset.mode = mode;
    badge.textContent = LABELS[mode] || "";
  }

  function poll(element) {
    const every = Math.max(500, Number(element.dataset.every || 2) * 1000);
    let last = null;
    element.dataset.mode = "poll";
    show("poll");
    setInterval(async function () {
      try {
        const response = await fetch(element.dataset.poll, { credentials: "same-origin" });
        if (!response.ok) { show("offline"); return; }
        const html = await response.text();
        if (html !== last) { last = html; element.innerHTML = html; }
        show("poll");
      } catch (error) {
        show("offline");
      }
    }, every);
  }

  function follow(element) {
    if (!("EventSource" in window) || element.dataset.mode === "poll") { poll(element); return; }
    let source = null;
    function open() {
      let opened = false;
      source = new EventSource(element.dataset.stream);
      source.onopen = function () { opened = true; show("sse"); };
      source.onmessage = function (event) { element.innerHTML = event.data; };
      source.onerror = function () {
        if (opened) { show("offline"); return; }  // EventSource reconnects by itself
        source.close();  // never opened (refused, or too many streams): poll instead
        source = null;
        poll(element);
      };
    }
    // A hidden tab gives its stream back: browsers allow few connections per host.
    document.addEventListener("visibilitychange", function () {
      if (document.hidden && source) { source.close(); source = null; }
      else if (!document.hidden && !source && element.dataset.mode !== "poll") { open(); }
    });
    open();
  }

  document.querySelectorAll("[data-stream]").forEach(follow);
})();
