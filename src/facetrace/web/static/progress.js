// Polls an import's progress and updates the bar; when it is done (or cancelled), lists
// the photos that were left out with their reasons (and the CSV of them); when a manifest
// was refused, lists its bad rows by line; when interrupted, offers to resume it.
(function () {
  const box = document.getElementById("import");
  if (!box) return;
  const bar = document.getElementById("import-bar");
  const status = document.getElementById("import-status");
  const summary = document.getElementById("import-summary");
  const counts = document.getElementById("import-counts");
  const cancelForm = document.getElementById("cancel-form");
  const interrupted = document.getElementById("import-interrupted");
  const ENDED = ["done", "failed", "cancelled"];
  // the job's state in words for the status line (the API's state names are terse)
  const STATE_WORDS = {
    queued: "Waiting to start",
    running: "Importing",
    done: "Import done",
    cancelled: "Import cancelled",
    interrupted: "Interrupted when the service stopped",
  };
  const SHOWN = 200;

  function fillTable(id, rows) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
      return tr;
    }));
  }
  function done(job) {
    const s = job.summary || {};
    const files = s.skipped_files || [];
    const skipped = typeof s.skipped === "number" ? s.skipped : files.length;
    const lines = [["Photos added", s.photos_added], ["Faces added", s.faces_added],
      ["Already in the gallery", s.already_present], ["Not imported", skipped]];
    summary.replaceChildren(...lines.map(([k, v]) => {
      const p = document.createElement("p"); p.textContent = k + ": " + (v ?? 0); return p;
    }));
    if (files.length) {
      document.getElementById("import-skipped").hidden = false;
      fillTable("skipped-table", files.slice(0, SHOWN));
      if (files.length > SHOWN) {
        const more = document.getElementById("skipped-more");
        more.hidden = false;
        more.textContent = `… and ${files.length - SHOWN} more in the CSV.`;
      }
    }
  }
  function failed(job) {
    status.textContent = "The import failed: " + job.error;
    const problems = job.problems || [];
    if (problems.length > 1) {
      document.getElementById("import-problems").hidden = false;
      fillTable("problems-table", problems.map((p) => [p.line ?? "—", p.reason]));
    }
  }
  async function tick() {
    let job;
    try {
      const resp = await fetch(box.dataset.url, { credentials: "same-origin" });
      job = await resp.json();
      if (!resp.ok) { status.textContent = job.detail || "error"; return; }
    } catch (e) { setTimeout(tick, 2000); return; }
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
    const s = job.summary || {};
    counts.textContent = `${s.photos_added ?? 0} photos added, ${s.faces_added ?? 0} faces, ` +
      `${s.skipped ?? 0} not imported` + (ENDED.includes(job.state) ? "" : " so far");
    if (ENDED.includes(job.state) || job.state === "interrupted") cancelForm.hidden = true;
    counts.hidden = job.state === "done" || job.state === "cancelled";  // the summary says it
    interrupted.hidden = job.state !== "interrupted";
    if (job.state === "failed") { failed(job); return; }
    let words = STATE_WORDS[job.state] || job.state;
    if (job.state === "running" && job.cancel_requested) words = "Stopping after this batch";
    status.textContent = words + ": " + job.done + " of " + job.total + " photos";
    if (job.state === "done" || job.state === "cancelled") { done(job); return; }
    if (job.state === "interrupted") return;
    setTimeout(tick, 700);
  }
  tick();
})();
