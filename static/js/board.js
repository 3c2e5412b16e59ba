// Drag a deal card onto another stage column: the server records the move and answers with the
// re-drawn board (htmx swaps it in), so the column totals stay right.
(function () {
  let dragged = null;

  document.addEventListener("dragstart", (event) => {
    const card = event.target.closest && event.target.closest(".deal");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
  });

  document.addEventListener("dragover", (event) => {
    if (dragged && event.target.closest(".column")) event.preventDefault();
  });

  document.addEventListener("drop", (event) => {
    const column = event.target.closest(".column");
    if (!dragged || !column) return;
    event.preventDefault();
    const board = document.getElementById("board");
    htmx.ajax("POST", `/opportunities/${dragged.dataset.id}/stage/`, {
      target: "#board",
      swap: "outerHTML",
      values: { stage: column.dataset.stage },
      headers: { "X-CSRFToken": board.dataset.csrf },
    });
    dragged = null;
  });

  document.addEventListener("dragend", () => { dragged = null; });
})();
