// Small behaviours without inline handlers (the pages' Content-Security-Policy forbids those).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
  if (event.target.closest("[data-back]") && history.length > 1) {
    event.preventDefault();
    history.back();
  }
});
// Look-alikes below the threshold stay out of the review form until the user opens them.
document.addEventListener("toggle", (event) => {
  if (event.target.id !== "lookalikes" || !event.target.open) return;
  const group = document.getElementById("lookalike-options");
  if (!group) return;
  group.hidden = false;
  for (const option of group.querySelectorAll("option")) option.hidden = false;
}, true);
