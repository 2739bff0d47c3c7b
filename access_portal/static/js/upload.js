/*
 * A small tus 1.0.0 client for the staff upload page: resumable, chunked uploads of a bag to /api/v1/uploads,
 * with progress and resume across a dropped connection or a reloaded page (the upload's URL is kept in
 * localStorage under the file's name, size and date). No build step, no dependency.
 *
 *   const upload = PearlUpload.start({
 *     file, archive: "GZ",
 *     headers: {"X-CSRF-Token": token},         // or {"Authorization": "Bearer …"}; cookies are sent too
 *     onProgress: (sent, total) => { … },
 *     onDone: (statusUrl, duplicateOf) => { … },  // the transfer's status URL (duplicateOf: an earlier one)
 *     onError: (message) => { … },
 *   });
 *   upload.abort();
 *
 * A form marked <form data-pearl-upload> with an <input type=file name=file>, a field named archive and a
 * <progress> is wired up by itself; without JavaScript the same form posts to /api/v1/transfers in one piece.
 */
(function (global) {
  "use strict";

  var TUS = "1.0.0";
  var RETRY_DELAYS = [1000, 3000, 10000, 20000, 30000];

  function b64(text) {
    return btoa(unescape(encodeURIComponent(text)));
  }

  function storageKey(file, archive) {
    return "pearl-upload:" + [archive, file.name, file.size, file.lastModified].join(":");
  }

  function remember(key, url) {
    try {
      if (url) { localStorage.setItem(key, url); } else { localStorage.removeItem(key); }
    } catch (e) { /* private mode: resume within this page only */ }
  }

  function recall(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  function request(method, url, headers, body, onUploadProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url, true);
      xhr.withCredentials = true;
      xhr.setRequestHeader("Tus-Resumable", TUS);
      Object.keys(headers).forEach(function (name) { xhr.setRequestHeader(name, headers[name]); });
      if (onUploadProgress && xhr.upload) {
        xhr.upload.onprogress = function (event) { onUploadProgress(event.loaded); };
      }
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = function () { reject(new Error("network")); };
      xhr.onabort = function () { reject(new Error("aborted")); };
      xhr.send(body === undefined ? null : body);
      request.current = xhr;
    });
  }

  function problem(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      var detail = body.detail || body;
      return (detail.code ? detail.code + ": " : "") + (detail.message_zh || detail.detail_zh || "") +
        " / " + (detail.message_en || detail.detail || xhr.statusText);
    } catch (e) {
      return "HTTP " + xhr.status;
    }
  }

  function start(options) {
    var file = options.file;
    var archive = options.archive;
    var endpoint = options.endpoint || "/api/v1/uploads";
    var chunkSize = options.chunkSize || 8 * 1024 * 1024;
    var headers = options.headers || {};
    var key = storageKey(file, archive);
    var aborted = false;
    var attempt = 0;
    var noop = function () {};
    var onProgress = options.onProgress || noop;
    var onDone = options.onDone || noop;
    var onError = options.onError || noop;

    function create() {
      var h = Object.assign({}, headers, {
        "Upload-Length": String(file.size),
        "Upload-Metadata": "archive " + b64(archive) + ",filename " + b64(file.name)
      });
      return request("POST", endpoint, h).then(function (xhr) {
        if (xhr.status !== 201) { throw new Error(problem(xhr)); }
        var url = new URL(xhr.getResponseHeader("Location"), global.location.href).href;
        remember(key, url);
        return { url: url, offset: 0 };
      });
    }

    function resumeOrCreate() {
      var url = recall(key);
      if (!url) { return create(); }
      return request("HEAD", url, headers).then(function (xhr) {
        if (xhr.status === 200) {
          return { url: url, offset: parseInt(xhr.getResponseHeader("Upload-Offset"), 10),
                   transfer: xhr.getResponseHeader("Archive-Transfer-Url") };
        }
        if (xhr.status === 404 || xhr.status === 410) { remember(key, null); return create(); }
        throw new Error(problem(xhr));
      });
    }

    function send(state) {
      if (state.transfer) { return finish(state.transfer, null); }
      onProgress(state.offset, file.size);
      var end = Math.min(state.offset + chunkSize, file.size);
      var h = Object.assign({}, headers, {
        "Upload-Offset": String(state.offset),
        "Content-Type": "application/offset+octet-stream"
      });
      return request("PATCH", state.url, h, file.slice(state.offset, end), function (loaded) {
        onProgress(state.offset + loaded, file.size);
      }).then(function (xhr) {
        if (xhr.status === 409) { return resumeOrCreate().then(send); }  // out of step: ask and go on
        if (xhr.status === 423) {  // the request cut a moment ago still holds the upload: wait, ask, go on
          return new Promise(function (r) { global.setTimeout(r, 500); }).then(resumeOrCreate).then(send);
        }
        if (xhr.status !== 204) { throw new Error(problem(xhr)); }
        attempt = 0;
        var offset = parseInt(xhr.getResponseHeader("Upload-Offset"), 10);
        var transfer = xhr.getResponseHeader("Archive-Transfer-Url");
        if (transfer) { return finish(transfer, xhr.getResponseHeader("Archive-Duplicate-Of")); }
        return send({ url: state.url, offset: offset });
      });
    }

    function finish(transfer, duplicateOf) {
      remember(key, null);
      onProgress(file.size, file.size);
      onDone(new URL(transfer, global.location.href).href, duplicateOf);
    }

    function run() {
      resumeOrCreate().then(send).catch(function (err) {
        if (aborted) { return; }
        if (err.message === "network" && attempt < RETRY_DELAYS.length) {
          global.setTimeout(run, RETRY_DELAYS[attempt++]);  // the connection dropped: resume from HEAD
          return;
        }
        onError(err.message);
      });
    }

    run();
    return {
      abort: function () {
        aborted = true;
        if (request.current) { request.current.abort(); }
      }
    };
  }

  function wire(form) {
    var input = form.querySelector("input[type=file]");
    var bar = form.querySelector("progress");
    var status = form.querySelector("[data-pearl-upload-status]");
    form.addEventListener("submit", function (event) {
      var file = input && input.files && input.files[0];
      if (!file) { return; }
      event.preventDefault();
      var csrf = form.querySelector("input[name=csrf_token]");
      start({
        file: file,
        archive: form.elements.archive.value,
        headers: csrf ? { "X-CSRF-Token": csrf.value } : {},
        onProgress: function (sent, total) {
          if (bar) { bar.max = total; bar.value = sent; }
          if (status) { status.textContent = Math.floor((100 * sent) / total) + " %"; }
        },
        onDone: function (statusUrl) { global.location.assign(form.dataset.pearlUploadDone || statusUrl); },
        onError: function (message) { if (status) { status.textContent = message; } }
      });
    });
  }

  global.PearlUpload = { start: start };
  if (global.document) {
    global.document.addEventListener("DOMContentLoaded", function () {
      Array.prototype.forEach.call(global.document.querySelectorAll("form[data-pearl-upload]"), wire);
    });
  }
})(window);
