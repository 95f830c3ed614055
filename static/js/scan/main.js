// The staff's phone scanner (/scan/): sign the phone in once, scan the senior's card, pick the
// service, confirm what the senior pays, and see the priced result. Without network the card is
// checked on the phone and the record waits in a queue, sent once the network is back, in order,
// each with its own idempotency key (a resend never records twice).

import * as api from "./api.js";
import { ApiError } from "./api.js";
import { startScanning, detector } from "./camera.js";
import { checkCardOffline, currentMonth, readCard } from "./card.js";
import { CONFIG, LANGUAGE, has, t } from "./i18n.js";
import { fen, formatFen, formatPercent, formatQuantity, hundredths, splitPrice, divideHalfUp } from "./money.js";
import * as store from "./store.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["view-home", "view-camera", "view-voucher", "view-item", "view-result", "view-refusal", "view-busy"];
const SYNC_EVERY_MS = 10 * 60 * 1000;
const RETRY_EVERY_MS = 15 * 1000;
const MAX_BACKOFF_MS = 5 * 60 * 1000;
const LOCATION_WAIT_MS = 300; // at submit, how long to wait more for a position that is on its way
const KEEP_SYNCED_MS = 24 * 3600 * 1000;
const MAX_QUANTITY = 9999n; // hundredths: 99.99, as the server allows
const OFFSET = CONFIG.time_zone_offset_minutes;

const state = {
  flow: null, // the scan in progress
  scanner: null,
  visits: [], // this staff member's open visits on the server
  entries: [], // the queue, as last read
  location: null,
  locating: null,
  replaying: false,
  nextReplayAt: 0,
  backoffMs: 5000,
};

// --- Small helpers ------------------------------------------------------------------------------

function element(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  for (const [name, value] of Object.entries(attrs || {})) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child) {
      node.append(child);
    }
  }
  return node;
}

function show(view) {
  for (const id of VIEWS) {
    $(id).hidden = id !== view;
  }
  window.scrollTo(0, 0);
}

function busy(text) {
  $("busy-text").textContent = text;
  show("view-busy");
}

function newKey() {
  if (crypto.randomUUID) {
    return `scan-${crypto.randomUUID()}`;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `scan-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// Local wall time in the vouchers' zone (UTC+8): "14:05", "12-01 14:05", "2026-12-01".
function localParts(iso) {
  const date = new Date(new Date(iso).getTime() + OFFSET * 60000).toISOString();
  return { day: date.slice(0, 10), monthDay: date.slice(5, 10), time: date.slice(11, 16) };
}

function money(text) {
  return `¥${text}`;
}

function itemName(item) {
  return (LANGUAGE === "en" && item.name_en) || item.name;
}

function unitName(unit) {
  return has(`unit_${unit}`) ? t(`unit_${unit}`) : unit;
}

function hoursMinutes(minutes) {
  const whole = Math.max(0, Math.floor(minutes));
  const hours = Math.floor(whole / 60);
  const rest = String(whole % 60).padStart(2, "0");
  return hours ? t("hours_minutes", { hours, minutes: rest }) : t("minutes", { minutes: whole });
}

function figures(list, rows) {
  list.replaceChildren(
    ...rows
      .filter(Boolean)
      .map(([label, value, className]) =>
        element("div", { className: className || "" }, [element("dt", { text: label }), element("dd", { text: value })])
      )
  );
}

// The plain words for a refusal code, with what to do next.
function refusalText(code, { retryAfter } = {}) {
  if (code === "rate_limited") {
    return t("error_rate_limited", { seconds: retryAfter || 60 });
  }
  return has(`error_${code}`) ? t(`error_${code}`) : t("error_unknown");
}

// --- Sign-in ------------------------------------------------------------------------------------

function device() {
  return store.load("device");
}

function showSignIn(message) {
  $("view-signin").hidden = false;
  $("view-device").hidden = true;
  const error = $("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
  const name = $("signin-device");
  if (!name.value) {
    name.value = t("device_name_default", { date: localParts(new Date().toISOString()).day });
  }
}

// Any 401: the token is no longer good. Back to the sign-in form; the queue stays on the phone.
function signedOut() {
  if (state.scanner) {
    state.scanner.stop();
  }
  store.forget("device");
  showSignIn(t("sign_in_again"));
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button[type=submit]");
  const error = $("signin-error");
  error.hidden = true;
  button.disabled = true;
  button.textContent = t("signing_in");
  try {
    const { data } = await api.post("auth/token/", {
      username: form.username.value.trim(),
      password: form.password.value,
      device_name: form.device_name.value.trim(),
    });
    store.save("device", {
      username: form.username.value.trim().toLowerCase(),
      token: data.token,
      staff: data.staff,
      provider: data.provider,
      provider_code: data.provider_code,
    });
    form.password.value = "";
    startDevice();
  } catch (problem) {
    const failed = problem instanceof ApiError && (problem.status === 401 || problem.status === 403);
    let text;
    if (problem instanceof ApiError && problem.unknown) {
      text = t("error_network");
    } else if (problem instanceof ApiError && problem.code === "rate_limited") {
      text = refusalText("rate_limited", problem);
    } else {
      text = failed ? t("sign_in_failed") : refusalText(problem.code);
    }
    error.textContent = problem.detail ? `${text} ${problem.detail}` : text;
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = t("sign_in");
  }
}

function askSignOut() {
  const pending = state.entries.filter((entry) => entry.status === "pending").length;
  const box = $("sign-out-box");
  box.hidden = false;
  $("sign-out-text").textContent = pending ? t("sign_out_refused", { count: pending }) : t("sign_out_confirm");
  $("sign-out-yes").hidden = pending > 0;
}

async function signOut() {
  const pending = state.entries.filter((entry) => entry.status === "pending").length;
  if (pending) {
    return askSignOut();
  }
  await store.clearQueue();
  for (const name of ["device", "keys", "revocations", "items", "visits"]) {
    store.forget(name);
  }
  state.entries = [];
  state.visits = [];
  $("sign-out-box").hidden = true;
  showSignIn("");
}

// --- Reference data for offline checks: keys, revocations, the provider's items ---------------------

async function syncReference() {
  if (!navigator.onLine || !device()) {
    return;
  }
  try {
    const keys = await api.get("scanner/keys/");
    store.save("keys", keys.data.keys);
    const items = await api.get("scanner/items/");
    store.save("items", items.data.service_items);
    await syncRevocations();
    store.save("synced_at", new Date().toISOString());
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) {
      signedOut();
    }
    // anything else: keep what the phone has, try again next time
  }
}

async function syncRevocations() {
  const known = store.load("revocations", { since: null, vouchers: {} });
  for (let page = 0; page < 50; page++) {
    const query = known.since ? `?since=${encodeURIComponent(known.since)}` : "";
    const { data } = await api.get(`scanner/revocations/${query}`);
    for (const row of data.revocations) {
      const before = known.vouchers[row.voucher_id] || { valid_version: 0, revoked: false };
      known.vouchers[row.voucher_id] = {
        valid_version: Math.max(before.valid_version, row.valid_version),
        revoked: before.revoked || row.revoked,
      };
    }
    const moved = data.next_since && data.next_since !== known.since;
    if (data.next_since) {
      known.since = data.next_since;
    }
    store.save("revocations", known);
    if (data.complete || !moved) {
      return;
    }
  }
}

// --- Location: sent when the phone gives one quickly, never waited for ------------------------------

function startLocation() {
  state.location = null;
  if (!navigator.geolocation) {
    state.locating = null;
    return;
  }
  state.locating = new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (position) => {
        const { latitude, longitude, accuracy } = position.coords;
        state.location = {
          latitude: Number(latitude.toFixed(6)),
          longitude: Number(longitude.toFixed(6)),
          accuracy: Math.round(accuracy),
        };
        resolve(state.location);
      },
      () => resolve(null),
      { enableHighAccuracy: true, timeout: 5000, maximumAge: 60000 }
    );
  });
}

async function locationNow() {
  if (state.location || !state.locating) {
    return state.location;
  }
  await Promise.race([state.locating, new Promise((resolve) => setTimeout(resolve, LOCATION_WAIT_MS))]);
  return state.location;
}

// --- Scanning -----------------------------------------------------------------------------------

function openCamera(purpose) {
  state.flow = { purpose, visit: purpose === "check_out" ? currentVisit() : null };
  startLocation();
  $("camera-title").textContent = purpose === "check_out" ? t("check_out") : t("scan_title");
  $("camera-hint").textContent = purpose === "check_out" ? t("scan_checkout_hint") : t("scan_hint");
  $("camera-error").hidden = true;
  $("camera-code").value = "";
  show("view-camera");
  const scanner = startScanning($("camera-video"));
  state.scanner = scanner;
  scanner.result.then(
    (text) => {
      if (state.scanner === scanner) {
        state.scanner = null;
      }
      if (text) {
        scanned(text);
      }
    },
    () => {
      if (state.scanner === scanner) {
        state.scanner = null;
      }
      $("camera-error").textContent = t("camera_failed");
      $("camera-error").hidden = false;
      $("camera-manual").open = true;
    }
  );
}

function closeCamera() {
  if (state.scanner) {
    state.scanner.stop();
    state.scanner = null;
  }
}

function typedCode(event, purpose) {
  event.preventDefault();
  const input = event.target.querySelector("input");
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  closeCamera();
  if (purpose) {
    state.flow = { purpose, visit: null };
    startLocation();
  }
  input.value = "";
  scanned(text);
}

async function scanned(text) {
  closeCamera();
  const flow = state.flow || { purpose: "serve" };
  state.flow = flow;
  flow.scanned = text.trim();
  if (flow.purpose === "check_out") {
    return checkOut();
  }
  busy(t("checking"));
  if (navigator.onLine) {
    try {
      const { data } = await api.post("vouchers/verify/", { token: flow.scanned });
      flow.offline = false;
      flow.voucher = data;
      flow.items = data.service_items;
      return showVoucher();
    } catch (problem) {
      if (!(problem instanceof ApiError) || !problem.unknown) {
        return refuse(problem);
      }
      // no answer: check the card on the phone instead
    }
  }
  return checkOffline(flow);
}

async function checkCard(scannedText) {
  const revocations = store.load("revocations", { vouchers: {} });
  return checkCardOffline(scannedText, {
    keys: store.load("keys", []),
    revocations: revocations.vouchers,
    now: new Date(),
    offsetMinutes: OFFSET,
    fallbackUrl: CONFIG.ed25519,
  });
}

async function checkOffline(flow) {
  const result = await checkCard(flow.scanned);
  if (result.code) {
    return refuseCode(result.code); // nothing kept: the card is not good
  }
  const items = store.load("items", []);
  if (!items.length) {
    return refuseCode("offline_no_items");
  }
  const card = result.card;
  flow.offline = true;
  flow.card = card;
  flow.voucher = { voucher_id: card.voucherId, period: `${card.year}-${String(card.month).padStart(2, "0")}` };
  flow.items = items;
  return showVoucher();
}

// --- The voucher and its items ----------------------------------------------------------------------

function showVoucher() {
  const { voucher, offline, items } = state.flow;
  $("voucher-month").textContent = voucher.period;
  $("voucher-name").textContent = offline ? `#${voucher.voucher_id}` : voucher.masked_name;
  $("voucher-tier").hidden = offline;
  $("voucher-tier").textContent = offline ? "" : voucher.tier_name;
  $("voucher-balance-box").hidden = offline;
  if (!offline) {
    $("voucher-balance").textContent = money(voucher.balance);
    $("voucher-face").textContent = `${t("face_value")} ${money(voucher.face_value)}`;
  }
  $("voucher-offline").hidden = !offline;
  const list = $("item-list");
  list.replaceChildren(
    ...items.map((item) => {
      const button = element("button", { className: "item-button", attrs: { type: "button" } }, [
        element("span", { className: "item-name", text: itemName(item) }),
        element("span", {
          className: "item-price",
          text: t("price_per_unit", { price: item.unit_price, unit: unitName(item.unit) }),
        }),
        item.per_hour ? element("span", { className: "item-note", text: t("check_in") }) : null,
      ]);
      button.dataset.code = item.code;
      button.addEventListener("click", () => pickItem(item));
      return element("li", {}, [button]);
    })
  );
  $("no-items").hidden = items.length > 0;
  show("view-voucher");
}

function pickItem(item) {
  const flow = state.flow;
  flow.item = item;
  flow.quantity = hundredths(item.quantity_step || "1") || 100n;
  if (flow.quantity <= 0n) {
    flow.quantity = 100n;
  }
  resetConfirmation(flow);
  renderItem();
  show("view-item");
}

function resetConfirmation(flow) {
  flow.key = null;
  flow.quote = null;
  flow.confirm = null;
  $("senior-confirm").checked = false;
}

function step(direction) {
  const flow = state.flow;
  const size = hundredths(flow.item.quantity_step || "1") || 100n;
  const next = flow.quantity + BigInt(direction) * size;
  if (next < size || next > MAX_QUANTITY) {
    return;
  }
  flow.quantity = next;
  resetConfirmation(flow);
  renderItem();
}

// The figures of the service about to be recorded: the server's quote after a 409, else the
// preview computed exactly as the server prices it.
function currentSplit(flow) {
  if (flow.quote) {
    const quote = flow.quote;
    return {
      amount: fen(quote.amount),
      government: fen(quote.government_share),
      senior: fen(quote.senior_share),
      remaining: quote.remaining_balance,
      balanceShort: quote.shortfall ? fen(quote.shortfall) > 0n : false,
    };
  }
  if (flow.offline || flow.purpose === "check_out" || flow.item.per_hour) {
    return null;
  }
  const split = splitPrice({
    unitPrice: flow.item.unit_price,
    quantity: flow.quantity,
    rate: flow.voucher.government_share_rate,
    balance: flow.voucher.balance,
  });
  if (split) {
    split.remaining = formatFen(fen(flow.voucher.balance) - split.government);
  }
  return split;
}

function renderItem() {
  const flow = state.flow;
  const item = flow.item;
  const checkingOut = flow.purpose === "check_out";
  $("item-name").textContent = checkingOut ? flow.visit.service_item_name : itemName(item);
  $("item-price").textContent = checkingOut
    ? ""
    : t("price_per_unit", { price: item.unit_price, unit: unitName(item.unit) });
  const hourly = checkingOut || item.per_hour;
  $("quantity-box").hidden = hourly;
  $("hourly-hint").hidden = !(hourly && !checkingOut);
  if (hourly && !checkingOut && item.max_minutes) {
    $("hourly-hint").textContent = `${t("hourly_hint")} ${t("at_most")} ${hoursMinutes(item.max_minutes)}`;
  } else {
    $("hourly-hint").textContent = t("hourly_hint");
  }
  if (!hourly) {
    $("qty-value").textContent = `${formatQuantity(flow.quantity)} ${unitName(item.unit)}`;
    const size = hundredths(item.quantity_step || "1") || 100n;
    $("qty-less").disabled = flow.quantity - size < size;
    $("qty-more").disabled = flow.quantity + size > MAX_QUANTITY;
  }
  const split = currentSplit(flow);
  const preview = $("preview");
  preview.hidden = !split && !(flow.offline && !hourly);
  if (split) {
    figures(preview, [
      [t("amount"), money(formatFen(split.amount)), "figure-amount"],
      [t("government_share"), money(formatFen(split.government))],
      [t("senior_share"), money(formatFen(split.senior)), split.senior > 0n ? "figure-due" : ""],
    ]);
  } else if (flow.offline && !hourly) {
    const price = fen(item.unit_price);
    figures(preview, [[t("amount"), money(formatFen(divideHalfUp(price * flow.quantity, 100n))), "figure-amount"]]);
  }
  $("offline-shares").hidden = !(flow.offline && !hourly);
  $("figures-changed").hidden = !flow.quote || checkingOut; // a check-out's quote is its first price
  const due = split && split.senior > 0n ? formatFen(split.senior) : null;
  $("senior-box").hidden = !due;
  if (due) {
    $("senior-due").textContent = t("senior_pays_now", { amount: due });
    $("senior-why").textContent = seniorWhy(flow, split);
    $("senior-confirm-label").textContent = t("confirm_senior_share", { amount: due });
  }
  flow.due = due;
  const submit = $("item-submit");
  submit.textContent = checkingOut ? t("check_out") : item.per_hour ? t("check_in") : t("confirm_service");
  submit.disabled = Boolean(due) && !$("senior-confirm").checked;
  $("item-error").hidden = true;
}

// Why the senior pays: the balance falls short, or their service type pays only part.
function seniorWhy(flow, split) {
  if (split.balanceShort) {
    const balance = flow.quote
      ? formatFen(fen(flow.quote.government_share) + fen(flow.quote.remaining_balance))
      : flow.voucher.balance;
    return t("why_balance", { balance });
  }
  const rate = flow.voucher && flow.voucher.government_share_rate;
  return rate ? t("why_tier", { percent: formatPercent(rate) }) : t("why_tier_plain");
}

// --- Recording -------------------------------------------------------------------------------------

async function submitItem() {
  const flow = state.flow;
  if (!flow || (flow.due && !$("senior-confirm").checked)) {
    return;
  }
  $("item-submit").disabled = true; // one tap, one record (a second would reuse the key anyway)
  if (flow.purpose === "check_out") {
    return checkOut();
  }
  const item = flow.item;
  flow.key = flow.key || newKey();
  const kind = item.per_hour ? "check_in" : "redeem";
  const body = { token: flow.scanned, service_item: item.code, idempotency_key: flow.key };
  if (kind === "redeem") {
    body.quantity = formatQuantity(flow.quantity);
    if (flow.due) {
      body.confirm_senior_share = flow.due;
    }
  }
  const location = await locationNow();
  if (location) {
    body.location = location;
  }
  const display = {
    item: itemName(item),
    unit: item.unit,
    quantity: kind === "redeem" ? body.quantity : null,
    voucher_id: flow.voucher.voucher_id,
    masked_name: flow.voucher.masked_name || null,
    per_hour: item.per_hour,
    max_minutes: item.max_minutes || null,
  };
  if (flow.offline) {
    body.scanned_at = new Date().toISOString();
    const id = await enqueue({ kind, body, display });
    return showPending(kind, id);
  }
  busy(t("recording"));
  try {
    const path = kind === "redeem" ? "redemptions/" : "visits/check-in/";
    const { data } = await api.post(path, body);
    if (kind === "redeem") {
      showRedeemed(data, item.unit);
      loadRecent();
    } else {
      state.visits = [data, ...state.visits.filter((visit) => visit.id !== data.id)];
      store.save("visits", state.visits);
      showCheckedIn(data);
    }
  } catch (problem) {
    return recordingFailed(problem, { kind, body, display });
  }
}

async function recordingFailed(problem, { kind, body, display, visit }) {
  const flow = state.flow;
  if (!(problem instanceof ApiError)) {
    throw problem;
  }
  if (problem.status === 401) {
    return signedOut();
  }
  if (problem.code === "confirmation_required" && problem.body && problem.body.quote) {
    // The figures changed since the preview (or a check-out's price): show the server's, ask again.
    flow.quote = problem.body.quote;
    flow.confirm = null;
    $("senior-confirm").checked = false;
    renderItem();
    show("view-item");
    return;
  }
  if (problem.unknown) {
    // Maybe recorded, maybe not: keep it and send it again with the same key; the server records
    // it once. The phone's time goes with it, so a later replay is priced as of now.
    body.scanned_at = new Date().toISOString();
    const id = await enqueue({ kind, body, display, visit_id: visit ? visit.id : null, unknown: true });
    return showPending(kind, id, true);
  }
  if (problem.code === "visit_open") {
    loadVisits(); // the visit still open shows on the home screen, to check out or cancel
  }
  return refuse(problem);
}

function showRedeemed(data, unit = null) {
  $("result-mark").textContent = "✓";
  $("result-mark").className = "result-mark result-ok";
  $("result-title").textContent = t("recorded");
  $("result-hint").textContent = "";
  $("result-hint").hidden = true;
  const hours = data.started_at && data.ended_at;
  const count = formatQuantity(hundredths(data.quantity) ?? 0n);
  const quantity = hours ? t("hours_value", { hours: count }) : unit ? `${count} ${unitName(unit)}` : count;
  figures($("result-figures"), [
    [t("service"), data.service_item_name],
    data.masked_name ? [t("senior"), data.masked_name] : null,
    hours ? [t("visit_time"), `${localParts(data.started_at).time}–${localParts(data.ended_at).time}`] : null,
    [t("quantity"), String(quantity)],
    [t("amount"), money(data.amount), "figure-amount"],
    [t("government_share"), money(data.government_share)],
    [t("senior_share"), money(data.senior_share), Number(data.senior_share) > 0 ? "figure-due" : ""],
    data.remaining_balance !== undefined ? [t("remaining_balance"), money(data.remaining_balance)] : null,
  ]);
  state.flow = null;
  show("view-result");
}

function showCheckedIn(visit) {
  $("result-mark").textContent = "✓";
  $("result-mark").className = "result-mark result-ok";
  $("result-title").textContent = t("checked_in");
  $("result-hint").textContent = t("checked_in_hint", { time: localParts(visit.started_at).time });
  $("result-hint").hidden = false;
  figures($("result-figures"), [
    [t("service"), visit.service_item_name],
    visit.masked_name ? [t("senior"), visit.masked_name] : null,
    [t("started"), localParts(visit.started_at).time],
    visit.max_minutes ? [t("at_most"), hoursMinutes(visit.max_minutes)] : null,
  ]);
  state.flow = null;
  renderVisit();
  show("view-result");
}

function showPending(kind, id, unknown = false) {
  $("result-mark").textContent = "⏳";
  $("result-mark").className = "result-mark result-pending";
  $("result-title").textContent = unknown ? t("unknown_outcome") : t("saved_pending");
  $("result-hint").textContent = t("saved_pending_hint");
  $("result-hint").hidden = false;
  const entry = state.entries.find((candidate) => candidate.id === id);
  figures(
    $("result-figures"),
    entry
      ? [
          [t("service"), entry.display.item],
          entry.display.quantity ? [t("quantity"), `${entry.display.quantity} ${unitName(entry.display.unit)}`] : null,
          [kindLabel(kind), localParts(entry.body.scanned_at).time],
        ]
      : []
  );
  state.flow = null;
  renderVisit();
  show("view-result");
}

function refuse(problem) {
  if (problem instanceof ApiError && problem.status === 401) {
    return signedOut();
  }
  const code = problem instanceof ApiError ? problem.code : "unknown";
  return refuseCode(code, problem instanceof ApiError ? problem : {});
}

function refuseCode(code, { detail = "", retryAfter = null, body = null } = {}) {
  const seconds = retryAfter || (body && body.retry_after);
  const name = code === "offline_unverifiable" ? "offline_unverifiable" : code;
  $("refusal-text").textContent = refusalText(name, { retryAfter: seconds });
  $("refusal-detail").textContent = detail;
  $("refusal-detail").hidden = !detail;
  $("view-refusal").dataset.code = code;
  state.flow = null;
  show("view-refusal");
}

// --- Visits (签到签退) ---------------------------------------------------------------------------

async function loadVisits() {
  if (!navigator.onLine) {
    state.visits = store.load("visits", []);
    return renderVisit();
  }
  try {
    const { data } = await api.get("visits/?status=open");
    state.visits = Array.isArray(data) ? data : data.results || [];
    store.save("visits", state.visits);
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) {
      return signedOut();
    }
    state.visits = store.load("visits", []);
  }
  renderVisit();
}

// The open visit: the server's, or one checked in on this phone and not yet uploaded.
function currentVisit() {
  const checkOuts = state.entries.filter((entry) => entry.kind === "check_out" && entry.status !== "refused");
  const closedHere = (visit) =>
    checkOuts.some((entry) => (visit.id && entry.visit_id === visit.id) || (visit.local_id && entry.depends_on === visit.local_id));
  const server = state.visits.find((visit) => visit.status === "open" && !closedHere(visit));
  if (server) {
    return server;
  }
  const local = state.entries.find(
    (entry) => entry.kind === "check_in" && entry.status === "pending" && !closedHere({ local_id: entry.id })
  );
  if (!local) {
    return null;
  }
  return {
    id: null,
    local_id: local.id,
    voucher_id: local.display.voucher_id,
    masked_name: local.display.masked_name,
    service_item: local.body.service_item,
    service_item_name: local.display.item,
    started_at: local.body.scanned_at,
    max_minutes: local.display.max_minutes || null,
    pending: true,
  };
}

function renderVisit() {
  const visit = currentVisit();
  const box = $("open-visit");
  box.hidden = !visit;
  $("scan-button").hidden = false;
  if (!visit) {
    return;
  }
  const minutes = (Date.now() - new Date(visit.started_at).getTime()) / 60000;
  $("visit-pending").hidden = !visit.pending;
  figures($("visit-figures"), [
    [t("service"), visit.service_item_name],
    visit.masked_name ? [t("senior"), visit.masked_name] : null,
    [t("started"), localParts(visit.started_at).time],
    [t("duration"), hoursMinutes(minutes), "figure-amount"],
    visit.max_minutes ? [t("at_most"), hoursMinutes(visit.max_minutes)] : null,
  ]);
  $("visit-too-long").hidden = !(visit.max_minutes && minutes > visit.max_minutes);
}

async function checkOut() {
  const flow = state.flow;
  const visit = flow.visit || currentVisit();
  if (!visit) {
    return refuseCode("visit_closed");
  }
  flow.visit = visit;
  flow.key = flow.key || newKey();
  const body = { token: flow.scanned, idempotency_key: flow.key };
  if (flow.due && $("senior-confirm").checked) {
    body.confirm_senior_share = flow.due;
  }
  const location = await locationNow();
  if (location) {
    body.location = location;
  }
  const display = {
    item: visit.service_item_name,
    unit: "hour",
    quantity: null,
    voucher_id: visit.voucher_id,
    masked_name: visit.masked_name || null,
  };
  if (!navigator.onLine || visit.pending) {
    // Check the card here: it must be good, and the visit's own.
    const result = await checkCard(flow.scanned);
    if (result.code) {
      return refuseCode(result.code);
    }
    if (result.card.voucherId !== visit.voucher_id) {
      return refuseCode("wrong_card");
    }
    body.scanned_at = new Date().toISOString();
    const id = await enqueue({
      kind: "check_out",
      body,
      display,
      visit_id: visit.id,
      depends_on: visit.id ? null : visit.local_id,
    });
    return showPending("check_out", id);
  }
  const card = readCard(flow.scanned);
  if (card && visit.voucher_id && card.voucherId !== visit.voucher_id) {
    return refuseCode("wrong_card");
  }
  busy(t("recording"));
  try {
    const { data } = await api.post(`visits/${visit.id}/check-out/`, body);
    state.visits = state.visits.filter((open) => open.id !== visit.id);
    store.save("visits", state.visits);
    renderVisit();
    showRedeemed(data);
    loadRecent();
  } catch (problem) {
    if (problem instanceof ApiError && problem.code === "confirmation_required" && problem.body) {
      flow.quote = problem.body.quote;
      flow.item = { code: visit.service_item, unit: "hour", per_hour: true, unit_price: "" };
      $("senior-confirm").checked = false;
      renderItem();
      show("view-item");
      return;
    }
    if (problem instanceof ApiError && ["visit_closed", "visit_overdue"].includes(problem.code)) {
      loadVisits();
    }
    return recordingFailed(problem, { kind: "check_out", body, display, visit });
  }
}

async function cancelVisit(event) {
  event.preventDefault();
  const visit = currentVisit();
  const reason = $("cancel-reason").value.trim();
  if (!visit || !reason) {
    $("cancel-reason").focus();
    return;
  }
  if (visit.pending) {
    // Never uploaded: nothing was recorded, so forget it (and a check-out waiting on it).
    for (const entry of state.entries) {
      if (entry.id === visit.local_id || entry.depends_on === visit.local_id) {
        await store.deleteEntry(entry.id);
      }
    }
    await refreshQueue();
  } else {
    try {
      await api.post(`visits/${visit.id}/cancel/`, { reason });
    } catch (problem) {
      return refuse(problem);
    }
    state.visits = state.visits.filter((open) => open.id !== visit.id);
    store.save("visits", state.visits);
  }
  $("cancel-form").hidden = true;
  $("cancel-reason").value = "";
  renderVisit();
  homeMessage(t("visit_cancelled"));
}

// --- The queue: records waiting to upload --------------------------------------------------------

function kindLabel(kind) {
  return { redeem: t("service"), check_in: t("check_in"), check_out: t("check_out") }[kind];
}

function ownedBySignedIn(entry) {
  const signedIn = device();
  return !entry.owner || !signedIn || !signedIn.username || entry.owner === signedIn.username;
}

async function enqueue({ kind, body, display, visit_id = null, depends_on = null, unknown = false }) {
  const entry = {
    kind,
    body,
    display,
    // Whose service it is: it is sent only while they are signed in (never as someone else's).
    owner: (device() && device().username) || null,
    visit_id,
    depends_on,
    unknown,
    status: "pending",
    attempts: 0,
    created_at: new Date().toISOString(),
  };
  const id = await store.addEntry(entry);
  await refreshQueue();
  state.nextReplayAt = 0;
  setTimeout(replayQueue, 50);
  return id;
}

async function refreshQueue() {
  const now = Date.now();
  const entries = await store.allEntries();
  for (const entry of entries) {
    if (entry.status === "synced" && now - new Date(entry.synced_at).getTime() > KEEP_SYNCED_MS) {
      await store.deleteEntry(entry.id);
    }
  }
  state.entries = (await store.allEntries()).sort((a, b) => a.id - b.id);
  renderQueue();
}

function renderQueue() {
  const entries = state.entries;
  const pending = entries.filter((entry) => entry.status === "pending").length;
  const badge = $("pending-badge");
  badge.hidden = pending === 0;
  badge.textContent = `${t("pending")} ${pending}`;
  $("queue").hidden = entries.length === 0;
  $("upload-now").hidden = pending === 0;
  $("queue-list").replaceChildren(
    ...entries
      .slice()
      .reverse()
      .map((entry) => {
        const status = element("span", { className: `badge badge-${entry.status}`, text: t(entry.status) });
        const when = element("time", {
          className: "record-time",
          text: localParts(entry.body.scanned_at).time,
          attrs: { datetime: entry.body.scanned_at },
        });
        const what = entry.display.quantity ? `${entry.display.item} × ${entry.display.quantity}` : entry.display.item;
        const label = entry.kind === "redeem" ? what : `${kindLabel(entry.kind)} · ${what}`;
        const head = element("div", { className: "record-main" }, [
          element("span", { className: "record-item", text: label }),
          status,
        ]);
        const meta = element("div", { className: "record-meta" }, [
          when,
          element("span", { text: entry.display.masked_name || `#${entry.display.voucher_id}` }),
        ]);
        const parts = [head, meta];
        if (entry.status === "synced" && entry.result && entry.result.amount !== undefined) {
          const result = entry.result;
          parts.push(
            element("dl", { className: "record-figures" }, [
              element("div", {}, [element("dt", { text: t("amount") }), element("dd", { text: money(result.amount) })]),
              element("div", {}, [
                element("dt", { text: t("government_share") }),
                element("dd", { text: money(result.government_share) }),
              ]),
              element("div", {}, [
                element("dt", { text: t("senior_share") }),
                element("dd", { text: money(result.senior_share) }),
              ]),
            ])
          );
        }
        if (entry.status === "pending" && entry.unknown) {
          parts.push(element("p", { className: "record-note", text: t("unknown_outcome") }));
        }
        if (entry.status === "pending" && !ownedBySignedIn(entry)) {
          parts.push(element("p", { className: "record-note", text: t("other_account", { name: entry.owner }) }));
        }
        if (entry.status === "refused" && entry.error) {
          parts.push(element("p", { className: "record-error", text: refusalText(entry.error.code, entry.error) }));
          if (entry.error.detail) {
            parts.push(element("p", { className: "record-detail", text: entry.error.detail }));
          }
        }
        if (entry.status !== "pending") {
          const dismiss = element("button", { className: "button record-button", text: t("dismiss"), attrs: { type: "button" } });
          dismiss.addEventListener("click", async () => {
            await store.deleteEntry(entry.id);
            await refreshQueue();
          });
          parts.push(dismiss);
        }
        const item = element("li", { className: `record record-${entry.status}` }, parts);
        item.dataset.status = entry.status;
        item.dataset.kind = entry.kind;
        return item;
      })
  );
  renderVisit();
}

function entryPath(entry) {
  if (entry.kind === "redeem") {
    return "redemptions/";
  }
  if (entry.kind === "check_in") {
    return "visits/check-in/";
  }
  return `visits/${entry.visit_id}/check-out/`;
}

// Sends the pending records in order, one at a time. A 4xx is final (refused, shown until
// dismissed); no answer or a 5xx stops the round and tries again later with the same key.
async function replayQueue() {
  if (state.replaying || !navigator.onLine || !device() || Date.now() < state.nextReplayAt) {
    return;
  }
  state.replaying = true;
  let changed = false;
  try {
    const entries = (await store.allEntries()).sort((a, b) => a.id - b.id);
    for (const entry of entries) {
      if (entry.status !== "pending") {
        continue;
      }
      if (!ownedBySignedIn(entry)) {
        continue; // another account's: it waits for them to sign in on this phone
      }
      if (entry.kind === "check_out" && !entry.visit_id) {
        const checkIn = entries.find((other) => other.id === entry.depends_on);
        if (!checkIn || checkIn.status === "refused") {
          entry.status = "refused";
          entry.error = { code: "visit_closed", detail: "" };
          await store.putEntry(entry);
          changed = true;
          continue;
        }
        if (checkIn.status !== "synced" || !checkIn.result) {
          break; // waits for its check-in's id
        }
        entry.visit_id = checkIn.result.id;
      }
      try {
        const { data } = await api.post(entryPath(entry), entry.body);
        entry.status = "synced";
        entry.result = data;
        entry.display.masked_name = data.masked_name || entry.display.masked_name;
        entry.synced_at = new Date().toISOString();
      } catch (problem) {
        if (!(problem instanceof ApiError)) {
          throw problem;
        }
        if (problem.status === 401) {
          await store.putEntry(entry);
          signedOut();
          return;
        }
        if (problem.unknown || problem.code === "rate_limited") {
          entry.attempts += 1;
          await store.putEntry(entry);
          const wait = problem.retryAfter
            ? problem.retryAfter * 1000
            : Math.min(state.backoffMs * 2 ** Math.min(entry.attempts - 1, 6), MAX_BACKOFF_MS);
          state.nextReplayAt = Date.now() + wait;
          changed = true;
          return;
        }
        entry.status = "refused";
        entry.error = { code: problem.code, detail: problem.detail, retryAfter: problem.retryAfter };
      }
      await store.putEntry(entry);
      changed = true;
    }
    state.nextReplayAt = 0;
  } finally {
    state.replaying = false;
    if (changed) {
      await refreshQueue();
      loadVisits();
      loadRecent();
    }
  }
}

// --- This phone's recent services, and voiding one ------------------------------------------------

async function loadRecent() {
  if (!navigator.onLine || !device()) {
    return;
  }
  let rows;
  try {
    ({ data: rows } = await api.get("redemptions/"));
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) {
      signedOut();
    }
    return;
  }
  const month = currentMonth(new Date(), OFFSET).day.slice(0, 7);
  const list = $("recent-list");
  $("recent-none").hidden = rows.length > 0;
  list.replaceChildren(
    ...rows.map((row) => {
      const when = localParts(row.served_at);
      const badges = [];
      if (row.voided) {
        badges.push(element("span", { className: "badge badge-voided", text: t("voided") }));
      }
      if (row.offline) {
        badges.push(element("span", { className: "badge", text: t("recorded_offline") }));
      }
      const parts = [
        element("div", { className: "record-main" }, [
          element("span", {
            className: "record-item",
            text: `${row.service_item_name} × ${formatQuantity(hundredths(row.quantity) ?? 0n)}`,
          }),
          element("span", { className: "record-amount", text: money(row.amount) }),
        ]),
        element("div", { className: "record-meta" }, [
          element("time", { text: `${when.monthDay} ${when.time}`, attrs: { datetime: row.served_at } }),
          element("span", { text: row.masked_name }),
          ...badges,
        ]),
      ];
      if (!row.voided && when.day.slice(0, 7) === month) {
        const open = element("button", { className: "button record-button", text: t("void"), attrs: { type: "button" } });
        const input = element("input", { attrs: { type: "text", maxlength: "200", required: "", name: "reason" } });
        const label = element("label", { text: t("void_reason") }, [input]);
        const confirm = element("button", {
          className: "button button-danger record-button",
          text: t("void_confirm"),
          attrs: { type: "submit" },
        });
        const form = element("form", { className: "void-form form" }, [label, confirm]);
        form.hidden = true;
        open.addEventListener("click", () => {
          form.hidden = !form.hidden;
          if (!form.hidden) {
            input.focus();
          }
        });
        form.addEventListener("submit", (event) => voidRedemption(event, row, input));
        parts.push(open, form);
      }
      const item = element("li", { className: `record${row.voided ? " record-voided" : ""}` }, parts);
      item.dataset.id = row.id;
      return item;
    })
  );
}

async function voidRedemption(event, row, input) {
  event.preventDefault();
  const reason = input.value.trim();
  if (!reason) {
    input.focus();
    return;
  }
  try {
    const { data } = await api.post(`redemptions/${row.id}/void/`, { reason });
    homeMessage(t("voided_done", { amount: data.credited_back }));
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) {
      return signedOut();
    }
    homeMessage(refusalText(problem.code, problem) + (problem.detail ? ` ${problem.detail}` : ""), true);
  }
  loadRecent();
}

function homeMessage(text, error = false) {
  const box = $("home-message");
  box.textContent = text;
  box.className = error ? "alert alert-error" : "alert";
  box.hidden = !text;
  show("view-home");
}

// --- Start -------------------------------------------------------------------------------------

function renderNetwork() {
  const online = navigator.onLine;
  const status = $("net-status");
  status.textContent = online ? t("online") : t("offline");
  status.className = `net ${online ? "net-online" : "net-offline"}`;
}

function goHome() {
  closeCamera();
  state.flow = null;
  $("home-message").hidden = true;
  renderVisit();
  show("view-home");
}

let started = false;

async function startDevice() {
  const signedIn = device();
  $("view-signin").hidden = true;
  $("view-device").hidden = false;
  $("device-staff").textContent = signedIn.staff;
  $("device-provider").textContent = signedIn.provider;
  $("sign-out-box").hidden = true;
  goHome();
  renderNetwork();
  await refreshQueue();
  loadVisits();
  loadRecent();
  replayQueue();
  await syncReference();
  // The decoder is fetched while there is network, so that a scan without it still reads the card.
  await detector().catch(() => {});
  if (!started) {
    started = true;
    setInterval(syncReference, SYNC_EVERY_MS);
    setInterval(replayQueue, RETRY_EVERY_MS);
    setInterval(renderVisit, 30000);
  }
  $("scanner").dataset.ready = "1";
}

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("scan-button").addEventListener("click", () => openCamera("serve"));
  $("manual-form").addEventListener("submit", (event) => typedCode(event, "serve"));
  $("camera-manual-form").addEventListener("submit", (event) => typedCode(event, null));
  $("camera-cancel").addEventListener("click", goHome);
  $("voucher-back").addEventListener("click", goHome);
  $("item-back").addEventListener("click", () => (state.flow && state.flow.purpose === "serve" ? show("view-voucher") : goHome()));
  $("qty-less").addEventListener("click", () => step(-1));
  $("qty-more").addEventListener("click", () => step(1));
  $("senior-confirm").addEventListener("change", () => {
    $("item-submit").disabled = Boolean(state.flow && state.flow.due) && !$("senior-confirm").checked;
  });
  $("item-submit").addEventListener("click", submitItem);
  $("result-next").addEventListener("click", goHome);
  $("refusal-back").addEventListener("click", goHome);
  $("check-out-button").addEventListener("click", () => openCamera("check_out"));
  $("cancel-visit-button").addEventListener("click", () => {
    $("cancel-form").hidden = !$("cancel-form").hidden;
  });
  $("cancel-form").addEventListener("submit", cancelVisit);
  $("upload-now").addEventListener("click", () => {
    state.nextReplayAt = 0;
    replayQueue();
  });
  $("recent-refresh").addEventListener("click", loadRecent);
  $("sign-out").addEventListener("click", askSignOut);
  $("sign-out-yes").addEventListener("click", signOut);
  $("sign-out-no").addEventListener("click", () => ($("sign-out-box").hidden = true));
  window.addEventListener("online", () => {
    renderNetwork();
    state.nextReplayAt = 0;
    replayQueue().then(syncReference);
    loadVisits();
    loadRecent();
  });
  window.addEventListener("offline", renderNetwork);
}

// Keep the page and its files on the phone, so that it opens without network too.
function keepForOffline() {
  if (!("serviceWorker" in navigator) || !CONFIG.service_worker) {
    return;
  }
  navigator.serviceWorker
    .register(CONFIG.service_worker, { scope: CONFIG.page })
    .then(() => navigator.serviceWorker.ready)
    .then(() => {
      $("scanner").dataset.offlineReady = "1";
    })
    .catch(() => {});
}

wire();
keepForOffline();
$("scan-loading").hidden = true;
if (device()) {
  startDevice();
} else {
  showSignIn("");
}
