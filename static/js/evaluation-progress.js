// The evaluation run page (templates/policies/run.html): polls the run's progress (JSON) every two
// seconds, moves the bar, and reloads the page once the run has finished, so that the server shows
// the outcome. A failed poll (a weak network, a restart) waits longer and tries again.
(function () {
  "use strict";
  var bar = document.getElementById("run-progress");
  if (!bar) {
    return;
  }
  var url = bar.getAttribute("data-progress-url");
  var step = document.getElementById("run-step");

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (progress) {
        bar.max = progress.total;
        bar.value = progress.done;
        bar.textContent = progress.text;
        if (step) {
          step.textContent = progress.text;
        }
        if (progress.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000);
      });
  }

  window.setTimeout(poll, 1000);
})();
