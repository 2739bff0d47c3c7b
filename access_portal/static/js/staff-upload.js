/*
 * The staff upload page with JavaScript: the same form (archive, bag file) is sent through the resumable tus
 * endpoint (/api/v1/uploads, PearlUpload in upload.js) in chunks, with a progress bar, resuming after a
 * dropped connection; when it is complete the browser goes to the transfer's page. Without JavaScript the
 * form posts to /staff/upload in one piece. The session's CSRF token goes as the X-CSRF-Token header.
 */
(function (global) {
  "use strict";
  var form = global.document.querySelector("form.upload");
  if (!form || !global.PearlUpload) { return; }
  var input = form.querySelector("input[type=file]");
  var bar = global.document.getElementById("u-progress");
  var status = global.document.getElementById("u-status");
  var button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", function (event) {
    var file = input && input.files && input.files[0];
    if (!file) { return; }
    event.preventDefault();
    button.disabled = true;
    bar.hidden = false;
    global.PearlUpload.start({
      file: file,
      archive: form.elements.archive.value,
      chunkSize: parseInt(form.dataset.chunkSize || "0", 10) || undefined,
      headers: { "X-CSRF-Token": form.elements.csrf_token.value },
      onProgress: function (sent, total) {
        bar.max = total;
        bar.value = sent;
        status.textContent = Math.floor((100 * sent) / Math.max(total, 1)) + " %";
      },
      onDone: function (statusUrl) {
        var id = statusUrl.replace(/\/+$/, "").split("/").pop();
        global.location.assign("/staff/transfers/" + id);
      },
      onError: function (message) {
        status.textContent = message;
        button.disabled = false;
      }
    });
  });
})(window);
