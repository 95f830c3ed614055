// The page's texts and settings, rendered by the server (vouchers/scan_views.py) as JSON: the
// scripts have no inline code and no gettext of their own.

const read = (id) => JSON.parse(document.getElementById(id).textContent);

const TEXT = read("scan-text");
export const CONFIG = read("scan-config");
export const LANGUAGE = document.documentElement.lang || "zh-hans";

// t("senior_pays_now", {amount: "4.50"}): the text of `key` with its %(name)s filled in.
export function t(key, params = {}) {
  const text = TEXT[key] === undefined ? key : TEXT[key];
  return text.replace(/%\((\w+)\)s|%%/g, (match, name) => (name ? String(params[name] ?? "") : "%"));
}

export function has(key) {
  return TEXT[key] !== undefined;
}
