// Landing page: create a meeting through the API and show its two links (for participants,
// and the creator's own moderator link), or join one by link. German or English like the
// meeting page (i18n.js). No inline script (the Content-Security-Policy forbids it) and no
// third-party origin.

import { initLanguage, language, LANGUAGES, onLanguageChange, setLanguage, t, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function localise() {
  translatePage();
  document.title = "incamera";
}

function showError(message) {
  const error = $("error");
  error.textContent = message;
  error.hidden = false;
}

async function createMeeting() {
  const button = $("create");
  button.disabled = true;
  $("error").hidden = true;
  try {
    const response = await fetch("/api/meetings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = await response.json();
    if (!response.ok) {
      const known = { account_required: "landing.accountRequired", too_many_meetings: "landing.tooMany" };
      const key = known[body.error];
      showError(key ? t(key) : body.detail || t("landing.serverAnswered", { status: response.status }));
      return;
    }
    $("join-url").value = body.join_url;
    $("moderator-url").value = body.moderator_url || body.join_url;
    $("open").href = body.moderator_url || body.join_url;
    $("created").hidden = false;
    $("join-url").select();
  } catch (err) {
    showError(t("landing.unreachable"));
  } finally {
    button.disabled = false;
  }
}

async function copyLink(input, button) {
  try {
    await navigator.clipboard.writeText($(input).value);
    $(button).textContent = t("landing.copied");
  } catch (err) {
    $(input).select();
  }
}

function joinByLink(event) {
  event.preventDefault();
  const text = $("join-link").value.trim();
  let url;
  try {
    url = new URL(text, window.location.origin);
  } catch (err) {
    showError(t("landing.notALink"));
    return;
  }
  const isMeeting = /^\/m\/[A-Za-z0-9_-]{22,64}$/.test(url.pathname);
  if (!isMeeting || !["http:", "https:"].includes(url.protocol)) {
    showError(t("landing.notALink"));
    return;
  }
  window.location.assign(url.href);
}

$("create").addEventListener("click", createMeeting);
$("copy").addEventListener("click", () => copyLink("join-url", "copy"));
$("copy-moderator").addEventListener("click", () => copyLink("moderator-url", "copy-moderator"));
$("join-form").addEventListener("submit", joinByLink);

// "Sign in", or "Signed in as X · Sign out" (a form carrying the session's CSRF token).
async function showAccount() {
  const bar = $("account");
  let me;
  try {
    const response = await fetch("/api/me", { credentials: "same-origin" });
    me = await response.json();
  } catch (err) {
    return;
  }
  if (me.kind !== "account") {
    const link = document.createElement("a");
    link.href = `/signin?lang=${language()}`;
    link.id = "signin-link";
    link.textContent = t("landing.signIn");
    bar.replaceChildren(link, languageSelect);
    return;
  }
  const who = document.createElement("span");
  who.id = "signed-in-as";
  who.textContent = t("landing.signedInAs", { name: me.display_name });
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/signout";
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrf_token";
  token.value = me.csrf_token;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = t("landing.signOut");
  form.append(token, button);
  bar.replaceChildren(who, document.createTextNode(" · "), form, languageSelect);
}

const languageSelect = $("lang-select");
for (const [code, label] of Object.entries(LANGUAGES)) {
  const option = document.createElement("option");
  option.value = code;
  option.textContent = label;
  languageSelect.append(option);
}
initLanguage(new URLSearchParams(window.location.hash.slice(1)).get("lang"));
languageSelect.value = language();
languageSelect.addEventListener("change", () => setLanguage(languageSelect.value));
onLanguageChange(() => {
  localise();
  showAccount();
});
localise();
showAccount();
