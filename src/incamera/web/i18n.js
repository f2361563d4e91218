// UI language: German or English. The browser's language chooses unless the person picked
// one (remembered in localStorage) or the URL fragment says `lang=de|en`.
// Elements carry `data-i18n="key"` (text), `data-i18n-label="key"` (aria-label and title)
// or `data-i18n-placeholder="key"`; `translatePage()` fills them in.

import de from "./i18n/de.js";
import en from "./i18n/en.js";

export const LANGUAGES = { en: "English", de: "Deutsch" };
const DICTIONARIES = { en, de };
const STORAGE_KEY = "incamera.lang";

let current = "en";
const listeners = new Set();

/** The language for a list of preferences such as navigator.languages ("de-AT" → "de"). */
export function pickLanguage(preferences) {
  for (const tag of preferences || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in DICTIONARIES) {
      return base;
    }
  }
  return "en";
}

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function initLanguage(override) {
  const chosen = [override, stored()].find((lang) => lang && lang in DICTIONARIES);
  current = chosen || pickLanguage(navigator.languages || [navigator.language]);
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

export function setLanguage(lang) {
  if (!(lang in DICTIONARIES) || lang === current) {
    return;
  }
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // private mode: the choice lasts for this page only
  }
  document.documentElement.lang = lang;
  translatePage();
  for (const listener of listeners) {
    listener(lang);
  }
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** The text for `key` in the current language, with `{name}` placeholders filled in. */
export function t(key, params = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? String(params[name]) : whole,
  );
}

export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    const label = t(el.dataset.i18nLabel);
    el.setAttribute("aria-label", label);
    el.title = label;
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  document.title = t("app.title");
}

/** Both dictionaries (for the test that checks they have the same keys). */
export function dictionaries() {
  return DICTIONARIES;
}
