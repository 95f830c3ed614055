// The voucher card's code, checked on the phone when there is no network (DESIGN.md §6.5).
// 120 characters of RFC 4648 base32 = 75 bytes:
//   key id (1) | voucher id (6, big-endian) | token version (2) | month (2) = (year−2000)×12+(month−1)
//   | Ed25519 signature (64) of the ASCII "homecare-voucher-token-v1" + the first 11 bytes.
// The QR holds the senior's page URL, <base>/v/<code>/; a typed code works too.

const DOMAIN = new TextEncoder().encode("homecare-voucher-token-v1");
const PAYLOAD_BYTES = 11;
const CODE = /^[A-Z2-7]{120}$/;
const URL_PATH = /\/v\/([^/?#\s]+)\/?(?:[?#].*)?$/;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

// What was scanned or typed -> the bare code (the URL's last /v/<code>/ part, or the text).
export function codeOf(scanned) {
  const text = String(scanned).trim();
  const match = URL_PATH.exec(text);
  return match ? decodeURIComponent(match[1]) : text;
}

export function base32Decode(text) {
  if (!CODE.test(text)) {
    return null;
  }
  const bytes = new Uint8Array((text.length * 5) / 8);
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const character of text) {
    buffer = (buffer << 5) | ALPHABET.indexOf(character);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[index++] = (buffer >> bits) & 0xff;
    }
  }
  return bytes;
}

export function base64UrlDecode(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (character) => character.charCodeAt(0));
}

// The card's fields, unverified; null when it is not a code of the current format.
export function readCard(scanned) {
  const bytes = base32Decode(codeOf(scanned));
  if (!bytes) {
    return null;
  }
  let voucherId = 0;
  for (let i = 1; i < 7; i++) {
    voucherId = voucherId * 256 + bytes[i];
  }
  const month = (bytes[9] << 8) | bytes[10];
  return {
    keyId: bytes[0],
    voucherId,
    version: (bytes[7] << 8) | bytes[8],
    year: 2000 + Math.floor(month / 12),
    month: (month % 12) + 1,
    signed: concat(DOMAIN, bytes.subarray(0, PAYLOAD_BYTES)),
    signature: bytes.slice(PAYLOAD_BYTES),
  };
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// An earlier-format code (<id base 36>.<version>.<MAC>): genuine ones are checked online only.
export function isEarlierFormat(scanned) {
  return /^[0-9a-z]{1,13}\.[0-9]{1,6}\.[A-Za-z0-9_-]{20}$/.test(codeOf(scanned));
}

let nobleModule = null;

// Ed25519 with WebCrypto; where the browser lacks it (older phones), the vendored @noble/ed25519.
export async function verifySignature(publicKey, signature, message, fallbackUrl) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch (error) {
    if (!fallbackUrl) {
      throw error;
    }
    nobleModule = nobleModule || (await import(fallbackUrl));
    return nobleModule.verifyAsync(signature, message, publicKey);
  }
}

// Today's year and month in the vouchers' time zone (UTC+8, no summer time).
export function currentMonth(now, offsetMinutes) {
  const local = new Date(now.getTime() + offsetMinutes * 60000);
  return { year: local.getUTCFullYear(), month: local.getUTCMonth() + 1, day: local.toISOString().slice(0, 10) };
}

// Check a scanned card offline. Returns {card} when it may be served, else {code}: the refusal
// code the server would give (invalid_token, voucher_revoked, voucher_expired,
// voucher_not_yet_valid) or "offline_unverifiable" (a card this phone cannot check).
export async function checkCardOffline(scanned, { keys, revocations, now, offsetMinutes, fallbackUrl }) {
  const card = readCard(scanned);
  if (!card) {
    return { code: isEarlierFormat(scanned) ? "offline_unverifiable" : "invalid_token" };
  }
  const key = (keys || []).find((k) => k.key_id === card.keyId && k.algorithm === "Ed25519");
  const today = currentMonth(now, offsetMinutes);
  if (!key) {
    return { code: "offline_unverifiable" };
  }
  let genuine = false;
  try {
    genuine = await verifySignature(base64UrlDecode(key.public_key), card.signature, card.signed, fallbackUrl);
  } catch {
    return { code: "offline_unverifiable" };
  }
  if (!genuine) {
    return { code: "invalid_token" };
  }
  if (key.valid_until && today.day > key.valid_until) {
    return { code: "voucher_expired" };
  }
  const revocation = (revocations || {})[card.voucherId];
  if (revocation && (revocation.revoked || card.version < revocation.valid_version)) {
    return { code: "voucher_revoked" };
  }
  const months = (y, m) => y * 12 + m;
  const difference = months(card.year, card.month) - months(today.year, today.month);
  if (difference < 0) {
    return { code: "voucher_expired" };
  }
  if (difference > 0) {
    return { code: "voucher_not_yet_valid" };
  }
  return { card };
}
