// Polls a video analysis: the bar follows the video seconds analysed; the speed line says
// frames per second and the time left; when it is done, links (and goes) to the persons.
(function () {
  const box = document.getElementById("video-job");
  if (!box) return;
  const bar = document.getElementById("video-bar");
  const status = document.getElementById("video-status");
  const speed = document.getElementById("video-speed");
  const cancel = document.getElementById("video-cancel");
  const done = document.getElementById("video-done");
  const WORDS = {
    queued: "Waiting to start (another video is being analysed)",
    running: "Analysing",
    done: "Done",
    failed: "The analysis failed",
    cancelled: "Cancelled: nothing of this video was kept",
    interrupted: "Interrupted when the service stopped: nothing of this video was kept",
  };
  const ENDED = ["done", "failed", "cancelled", "interrupted"];

  function clock(s) {
    const t = Math.round(s * 10);
    const m = Math.floor(t / 600), rest = t % 600;
    return `${m}:${String(Math.floor(rest / 10)).padStart(2, "0")}.${rest % 10}`;
  }
  function left(s) {
    if (s == null) return "working out the time left";
    if (s < 60) return `about ${Math.max(1, Math.round(s))} s left`;
    return `about ${Math.round(s / 60)} min left`;
  }
  async function tick() {
    let job;
    try {
      const resp = await fetch(box.dataset.url, { credentials: "same-origin" });
      job = await resp.json();
      if (!resp.ok) { status.textContent = job.detail || "error"; return; }
    } catch (e) { setTimeout(tick, 2000); return; }
    bar.max = Math.max(job.duration_s, 0.001);
    bar.value = job.video_s;
    let words = WORDS[job.state] || job.state;
    if (job.state === "running") {
      words += `: ${clock(job.video_s)} of ${clock(job.duration_s)}`;
      speed.textContent = job.fps > 0 ? `${job.fps.toFixed(1)} frames/s · ${left(job.eta_s)}` : "starting";
    } else if (job.state === "failed") {
      words += ": " + job.error;
      speed.textContent = "Nothing of this video was kept.";
    } else {
      speed.textContent = "";
    }
    status.textContent = words;
    if (ENDED.includes(job.state)) cancel.hidden = true;
    if (job.state === "done" && job.probe) {
      done.hidden = false;
      const n = job.persons;
      document.getElementById("video-found").textContent = `${n} person${n === 1 ? "" : "s"} found.`;
      const link = document.getElementById("video-persons-link");
      link.href = `/probes/${job.probe.id}`;
      if (box.dataset.state !== "done") setTimeout(() => { location.href = link.href; }, 1200);
      return;
    }
    if (ENDED.includes(job.state)) return;
    setTimeout(tick, 800);
  }
  tick();
})();
