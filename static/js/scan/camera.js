// The rear camera and a QR decoder: the browser's own BarcodeDetector where it has one (Android
// Chrome), else the vendored `barcode-detector` (zxing-wasm), its wasm loaded from this server.

import { CONFIG } from "./i18n.js";

let detectorPromise = null;

async function nativeDetector() {
  if (!("BarcodeDetector" in window)) {
    return null;
  }
  try {
    const formats = await window.BarcodeDetector.getSupportedFormats();
    return formats.includes("qr_code") ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
  } catch {
    return null;
  }
}

async function vendoredDetector() {
  const module = await import(CONFIG.decoder);
  const wasm = new URL(CONFIG.decoder_wasm, document.baseURI).href;
  await module.prepareZXingModule({
    overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? wasm : prefix + path) },
    fireImmediately: true,
  });
  return new module.BarcodeDetector({ formats: ["qr_code"] });
}

// The decoder, made once (the wasm is 1 MB: fetched and compiled on first use).
export function detector() {
  detectorPromise =
    detectorPromise ||
    (async () => (await nativeDetector()) || vendoredDetector())().catch((error) => {
      detectorPromise = null;
      throw error;
    });
  return detectorPromise;
}

// Scans with the rear camera into `video` until a QR code is read (resolves to its text) or
// stop() is called (resolves to null). Rejects when there is no camera or it is not allowed.
export function startScanning(video) {
  let stopped = false;
  let stream = null;
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });

  function stop(value = null) {
    if (stopped) {
      return;
    }
    stopped = true;
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
    }
    video.srcObject = null;
    finish(value);
  }

  const run = (async () => {
    const decoding = detector();
    let decoder;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
      if (stopped) {
        stop();
        return;
      }
      video.srcObject = stream;
      video.setAttribute("playsinline", "");
      video.muted = true;
      await video.play();
      decoder = await decoding;
    } catch (error) {
      if (stream) {
        stream.getTracks().forEach((track) => track.stop());
      }
      stopped = true;
      throw error;
    }
    while (!stopped) {
      if (video.readyState >= 2) {
        try {
          const codes = await decoder.detect(video);
          const hit = codes.find((code) => code.rawValue);
          if (hit) {
            if (navigator.vibrate) {
              navigator.vibrate(150);
            }
            stop(hit.rawValue);
            return;
          }
        } catch {
          // a frame that could not be read: try the next one
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
  })();

  return {
    result: Promise.race([done, run.then(() => done)]),
    stop: () => stop(null),
  };
}
