// Polls an import's progress and updates the bar; stops when it is done or failed.
(function () {
  const box = document.getElementById("import");
  if (!box) return;
  const bar = document.getElementById("import-bar");
  const status = document.getElementById("import-status");
  const summary = document.getElementById("import-summary");
  async function tick() {
    let job;
    try {
      const resp = await fetch(box.dataset.url, { credentials: "same-origin" });
      job = await resp.json();
      if (!resp.ok) { status.textContent = job.detail || "error"; return; }
    } catch (e) { setTimeout(tick, 2000); return; }
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
    status.textContent = job.state === "failed" ? "Failed: " + job.error
      : job.state + ": " + job.done + " of " + job.total + " photos";
    if (job.state === "done") {
      const s = job.summary || {};
      const lines = [["Photos added", s.photos_added], ["Faces added", s.faces_added],
        ["Already present", s.already_present], ["Skipped", (s.skipped || []).length]];
      summary.replaceChildren(...lines.map(([k, v]) => {
        const p = document.createElement("p"); p.textContent = k + ": " + (v ?? 0); return p;
      }));
      for (const [file, reason] of (s.skipped || []).slice(0, 50)) {
        const p = document.createElement("p"); p.className = "small warn";
        p.textContent = file + ": " + reason; summary.append(p);
      }
      return;
    }
    if (job.state !== "failed") setTimeout(tick, 700);
  }
  tick();
})();
