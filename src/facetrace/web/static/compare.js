// The side-by-side comparison: both aligned faces zoom and pan together (wheel, drag,
// buttons, + - 0 keys), and the reference's photos can be flipped through (buttons,
// thumbnails, arrow keys). Transforms are set through the CSSOM, which the pages'
// Content-Security-Policy allows (it forbids inline style attributes and handlers).
(function () {
  const root = document.getElementById("compare");
  if (!root) return;
  const images = [document.getElementById("probe-view"), document.getElementById("reference-view")];
  const level = document.getElementById("zoom-level");
  const thumbs = Array.from(root.querySelectorAll(".thumb"));
  const caption = document.getElementById("reference-caption");
  const whole = document.getElementById("reference-whole");
  const view = { scale: 1, x: 0, y: 0 };
  const MIN = 1, MAX = 8;
  let current = Number(root.dataset.first || 0);

  function clamp() {
    // keep the picture covering its pane: no panning past the edges
    const limit = (view.scale - 1) * 180;
    view.x = Math.max(-limit, Math.min(limit, view.x));
    view.y = Math.max(-limit, Math.min(limit, view.y));
  }
  function apply() {
    clamp();
    for (const img of images) {
      img.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    }
    level.textContent = Math.round(view.scale * 100) + " %";
  }
  function zoom(factor, cx = 0, cy = 0) {
    const next = Math.max(MIN, Math.min(MAX, view.scale * factor));
    const k = next / view.scale;
    // zoom about the point (cx, cy), given relative to the pane's centre
    view.x = cx - k * (cx - view.x);
    view.y = cy - k * (cy - view.y);
    view.scale = next;
    apply();
  }
  function reset() { view.scale = 1; view.x = 0; view.y = 0; apply(); }

  root.addEventListener("click", (event) => {
    const z = event.target.closest("[data-zoom]");
    if (z) {
      const op = z.dataset.zoom;
      if (op === "in") zoom(1.5); else if (op === "out") zoom(1 / 1.5); else reset();
    }
    const f = event.target.closest("[data-flip]");
    if (f) show(current + Number(f.dataset.flip));
    const t = event.target.closest(".thumb");
    if (t) show(Number(t.dataset.index));
  });

  for (const pane of root.querySelectorAll(".zoom-pane")) {
    pane.addEventListener("wheel", (event) => {
      event.preventDefault();
      const r = pane.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2,
        event.clientX - r.left - r.width / 2, event.clientY - r.top - r.height / 2);
    }, { passive: false });
    pane.addEventListener("pointerdown", (event) => {
      const start = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
      pane.setPointerCapture(event.pointerId);
      const move = (e) => { view.x = start.vx + e.clientX - start.x; view.y = start.vy + e.clientY - start.y; apply(); };
      const up = () => { pane.removeEventListener("pointermove", move); pane.removeEventListener("pointerup", up); };
      pane.addEventListener("pointermove", move);
      pane.addEventListener("pointerup", up);
    });
  }

  function show(index) {
    if (!thumbs.length) return;
    current = (index + thumbs.length) % thumbs.length;
    const t = thumbs[current];
    images[1].src = t.dataset.src;
    caption.textContent = `photo ${current + 1} of ${thumbs.length}`;
    whole.href = t.dataset.whole;
    for (const other of thumbs) other.classList.toggle("current", other === t);
    for (const info of document.querySelectorAll(".ref-info")) {
      info.hidden = info.dataset.photo !== t.dataset.photo;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    if (event.key === "+" || event.key === "=") zoom(1.5);
    else if (event.key === "-") zoom(1 / 1.5);
    else if (event.key === "0") reset();
    else if (event.key === "ArrowRight") show(current + 1);
    else if (event.key === "ArrowLeft") show(current - 1);
  });
  apply();
})();
