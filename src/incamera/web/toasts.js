// Short notices at the bottom of the screen (joins, leaves, errors); announced politely.

import { $, h } from "./dom.js";

const MAX_TOASTS = 4;

export function toast(text, { timeout = 4000, onClick = null } = {}) {
  const box = $("toasts");
  const el = onClick
    ? h("button", { type: "button", class: "toast", text })
    : h("div", { class: "toast", role: "status", text });
  if (onClick) {
    el.addEventListener("click", () => {
      el.remove();
      onClick();
    });
  }
  box.append(el);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}
