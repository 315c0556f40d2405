// lifrnn dashboard: live progress on a job page (polls its small JSON status, reloads when the
// job ends), and a gentle refresh of the queue while jobs are active. Pages work without it.
"use strict";
(function () {
  // one colour per compared job (up to 20), the same in every chart of the compare view
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363"];
  const live = document.querySelector("[data-live-status]");
  if (live) {
    const url = live.dataset.liveStatus;
    const tick = async function () {
      try {
        const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (answer.status === 401) { window.location.reload(); return; }  // session ended: sign in
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
  const compared = document.getElementById("compare-data");
  if (compared) {
    const plot = JSON.parse(compared.textContent);
    const start = function () { drawOverlaid(plot); drawScatter(plot); };
    if (window.uPlot) { start(); } else { window.addEventListener("load", start); }
  }
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
  // Compare view: each curve name (abscissa, cost, loss) once, with one line per job, on the
  // union of their iterations (uPlot.join leaves gaps where a job has no point).
  async function drawOverlaid(plot) {
    const section = document.getElementById("compare-curves");
    const answers = await Promise.all(plot.series.map(async function (job) {
      try {
        const answer = await fetch(job.url, { credentials: "same-origin", cache: "no-store" });
        return answer.ok ? await answer.json() : {};
      } catch (error) { return {}; }
    }));
    const names = [];
    answers.forEach(function (series) {
      for (const name in series) { if (!names.includes(name) && series[name].steps.length) { names.push(name); } }
    });
    names.forEach(function (name) {
      const jobs = [];
      const tables = [];
      answers.forEach(function (series, i) {
        const points = series[name];
        if (points && points.steps.length) { jobs.push(plot.series[i]); tables.push([points.steps, points.values]); }
      });
      const data = window.uPlot.join(tables);
      const box = document.createElement("div");
      box.className = "curve";
      box.id = "overlay-" + name;
      box.dataset.lines = String(jobs.length);
      section.appendChild(box);
      const logScale = name === "cost" || name === "loss";
      new window.uPlot({
        title: name, width: Math.min(section.clientWidth || 800, 900), height: 260,
        scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
        axes: [{ label: "iteration" }, { label: name, size: 70 }],
        series: [{ label: "iteration" }].concat(jobs.map(function (job, i) {
          return { label: job.label, stroke: PALETTE[plot.series.indexOf(job) % PALETTE.length], width: 1.5, spanGaps: true };
        })),
      }, data, box);
    });
    document.getElementById("compare-curves-empty").hidden = names.length > 0;
    section.dataset.curves = String(names.length);
  }

  // tick labels with 4 significant digits (uPlot's own can repeat a rounded value), and ranges
  // with a margin so no point sits on the frame
  function precise(u, values) { return values.map(function (v) { return String(Number(v.toPrecision(4))); }); }
  function padded(u, min, max) {
    const margin = (max - min) * 0.08 || Math.abs(max) * 0.08 || 1;
    return [min - margin, max + margin];
  }

  // Compare view: the chosen metric against the chosen parameter, one point per job.
  function drawScatter(plot) {
    const box = document.getElementById("scatter-plot");
    if (!box) { return; }
    const pickX = document.getElementById("scatter-x");
    const pickY = document.getElementById("scatter-y");
    let chart = null;
    const draw = function () {
      const x = pickX.value;
      const y = pickY.value;
      const points = plot.jobs
        .filter(function (job) { return x in job.params && y in job.metrics; })
        .map(function (job) { return [job.params[x], job.metrics[y]]; })
        .sort(function (a, b) { return a[0] - b[0]; });
      if (chart) { chart.destroy(); }
      box.dataset.points = String(points.length);
      chart = new window.uPlot({
        title: y + " against " + x, width: Math.min(box.parentElement.clientWidth || 640, 640), height: 300,
        scales: { x: { time: false, range: padded }, y: { range: padded } },
        axes: [{ label: x, values: precise }, { label: y, size: 80, values: precise }],
        series: [{ label: x }, {
          label: y, stroke: PALETTE[0], paths: function () { return null; },
          points: { show: true, size: 9, fill: PALETTE[0] },
        }],
      }, [points.map(function (p) { return p[0]; }), points.map(function (p) { return p[1]; })], box);
    };
    pickX.addEventListener("change", draw);
    pickY.addEventListener("change", draw);
    draw();
  }
})();
