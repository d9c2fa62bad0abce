// Drawing a face box on the probe photo: drag a rectangle on the SVG; its corners, in
// the photo's own pixels, go into the form that adds and searches the face.
(function () {
  const form = document.getElementById("draw");
  const svg = document.querySelector("#probe-canvas svg.probe-photo");
  if (!form || !svg) return;
  const NS = "http://www.w3.org/2000/svg";
  const width = Number(svg.dataset.width), height = Number(svg.dataset.height);
  const status = document.getElementById("draw-status");
  const button = document.getElementById("draw-search");
  const rect = document.createElementNS(NS, "rect");
  rect.setAttribute("class", "drawing");
  rect.setAttribute("stroke-width", String(Math.max(width, height) / 150));
  svg.appendChild(rect);
  svg.classList.add("drawable");
  let start = null;

  function point(event) {
    const p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    const q = p.matrixTransform(svg.getScreenCTM().inverse());
    return { x: Math.max(0, Math.min(width, q.x)), y: Math.max(0, Math.min(height, q.y)) };
  }
  function show(a, b) {
    const x1 = Math.round(Math.min(a.x, b.x)), y1 = Math.round(Math.min(a.y, b.y));
    const x2 = Math.round(Math.max(a.x, b.x)), y2 = Math.round(Math.max(a.y, b.y));
    rect.setAttribute("x", x1); rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
    return [x1, y1, x2, y2];
  }
  svg.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    start = point(event);
    svg.setPointerCapture(event.pointerId);
    show(start, start);
  });
  svg.addEventListener("pointermove", (event) => { if (start) show(start, point(event)); });
  svg.addEventListener("pointerup", (event) => {
    if (!start) return;
    const [x1, y1, x2, y2] = show(start, point(event));
    start = null;
    for (const [name, v] of [["x1", x1], ["y1", y1], ["x2", x2], ["y2", y2]]) {
      form.elements[name].value = v;
    }
    const ok = x2 - x1 >= 20 && y2 - y1 >= 20;
    button.disabled = !ok;
    status.textContent = ok
      ? `Box drawn: ${x2 - x1} × ${y2 - y1} pixels. Drag again to redraw it.`
      : "The box is too small (at least 20 pixels a side): drag again.";
  });
})();
