// The scanner's service worker, served at /scan/sw.js (its scope is /scan/) by
// vouchers/scan_views.py, which puts before this the constants PAGE (the page's URL), ASSETS
// (the URLs of its scripts, styles, decoder and icon) and VERSION. It lets the page open without
// network: the page and its files come from the network when there is one (and are kept), else
// from what was kept. The API is never kept: its answers are the server's, or nothing.

const CACHE = `homecare-scan-${VERSION}`;
const KEPT = new Set([PAGE, ...ASSETS]);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll([...KEPT]))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(names.filter((name) => name.startsWith("homecare-scan-") && name !== CACHE).map((name) => caches.delete(name)))
      )
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) {
    return;
  }
  const key = url.pathname === PAGE ? PAGE : url.pathname;
  if (!KEPT.has(key)) {
    return; // the API and everything else: straight to the network
  }
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.open(CACHE).then((cache) => cache.match(key)).then((kept) => kept || Response.error()))
  );
});
