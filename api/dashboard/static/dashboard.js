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
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", async function () {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "copied";
      } catch (error) { button.textContent = "select and copy"; }
    });
  });
  const curves = document.querySelector("[data-series]");
  if (curves) { drawCurves(curves); }
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    // not while the user is ticking jobs to compare
    window.setTimeout(function () {
      if (!document.querySelector("input[name=ids]:checked")) { window.location.reload(); }
    }, 1000 * Number(refresh.dataset.refresh));
  }

  // The job's curves (SOC abscissa, fit cost, retraining loss) drawn with uPlot; extended every
  // two seconds while the job runs (only the points after the last step drawn are fetched).
  function drawCurves(section) {
    const url = section.dataset.series;
    const plots = {};
    const data = {};
    let live = section.dataset.live === "1";
    const lastStep = function () {  // the smallest last step over the curves: none is missed
      let last = Infinity;
      for (const name in data) { last = Math.min(last, data[name][0][data[name][0].length - 1]); }
      return last === Infinity ? -1 : last;
    };
    const width = function () { return Math.min(section.clientWidth || 640, 640); };
    const add = function (series) {
      for (const name in series) {
        const points = series[name];
        if (!points.steps.length) { continue; }
        if (!data[name]) {
          data[name] = [[], []];
          const box = document.createElement("div");
          box.className = "curve";
          box.id = "curve-" + name;
          section.appendChild(box);
          const logScale = name === "cost" || name === "loss";
          plots[name] = new window.uPlot({
            title: name, width: width(), height: 220,
            scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
            axes: [{ label: "iteration" }, { label: name, size: 70 }],
            series: [{ label: "iteration" }, { label: name, stroke: "#1f6fb2", width: 1.5 }],
          }, data[name], box);
        }
        const known = data[name][0];
        points.steps.forEach(function (step, i) {
          if (!known.length || step > known[known.length - 1]) {
            data[name][0].push(step);
            data[name][1].push(points.values[i]);
          }
        });
        plots[name].setData(data[name]);
      }
      const empty = document.getElementById("curves-empty");
      if (empty) { empty.hidden = Object.keys(data).length > 0; }
      section.dataset.points = String(Object.values(data).reduce(function (n, d) { return n + d[0].length; }, 0));
    };
    const tick = async function () {
      try {
        const answer = await fetch(url + "?after=" + lastStep(), { credentials: "same-origin", cache: "no-store" });
        if (answer.ok) { add(await answer.json()); }
        const state = document.querySelector("#job-status .status");
        if (state && ["succeeded", "failed", "cancelled"].includes(state.textContent.trim())) { live = false; }
      } catch (error) { /* the server is restarting: try again */ }
      if (live) { window.setTimeout(tick, 2000); }
    };
    if (window.uPlot) { tick(); } else { window.addEventListener("load", tick); }
  }
})();
