// Small DOM helpers. Text always goes in through textContent, never as HTML.

export const $ = (id) => document.getElementById(id);

/** `h("div", {class: "x", dataset: {a: "1"}}, child, "text")` */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An icon from the sprite in meeting.html (`<svg class="icon"><use href="#i-name">`). */
export function icon(name, extraClass = "") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", `icon ${extraClass}`.trim());
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

/** Initials of a display name ("Ada Lovelace" -> "AL"). */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => Array.from(w)[0].toUpperCase()).join("") || "?";
}

/** A stable, pleasant background colour for a participant's avatar. */
export function avatarColour(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 45% 42%)`;
}

export function avatar(name, key) {
  const el = h("span", { class: "avatar-circle", "aria-hidden": "true", text: initials(name) });
  el.style.backgroundColor = avatarColour(key);
  return el;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** True when a key press is meant for a text field, not a shortcut. */
export function isTyping(event) {
  const target = event.target;
  return (
    target instanceof HTMLInputElement ||
    target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement ||
    target?.isContentEditable
  );
}
