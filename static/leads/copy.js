// "Copy" buttons: copy the text of the element their data-copy-target names.
document.querySelectorAll("[data-copy-target]").forEach(function (button) {
  button.addEventListener("click", function () {
    var source = document.querySelector(button.dataset.copyTarget);
    source.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(source.value).then(function () {
        button.textContent = "Copied";
      });
    }
  });
});
