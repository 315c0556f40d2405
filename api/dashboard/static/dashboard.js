// lifrnn dashboard: live progress on a job page (polls its small JSON status, reloads when the
// job ends), and a gentle refresh of the queue while jobs are active. Pages work without it.
"use strict";
(function () {
  const live = document.querySelector("[data-live-status]");
  if (live) {
    const url = live.dataset.liveStatus;
    const tick = async function () {
      try {
        const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (answer.ok) {
          const job = await answer.json();
          const badge = document.querySelector("#job-status .status");
          badge.textContent = job.status;
          badge.className = "status s-" + job.status;
          document.getElementById("job-progress").value = job.progress;
          document.getElementById("job-percent").textContent = (job.progress * 100).toFixed(1) + " %";
          document.getElementById("job-message").textContent = job.message;
          document.getElementById("job-timing").textContent = job.timing;
          if (job.terminal) { window.location.reload(); return; }
        }
      } catch (error) { /* the server is restarting: try again */ }
      window.setTimeout(tick, 1000);
    };
    window.setTimeout(tick, 500);
  }
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    // not while the user is ticking jobs to compare
    window.setTimeout(function () {
      if (!document.querySelector("input[name=ids]:checked")) { window.location.reload(); }
    }, 1000 * Number(refresh.dataset.refresh));
  }
})();
