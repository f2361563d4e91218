// Landing page: create a meeting through the API and show its link, or join one by link.
// No inline script (the Content-Security-Policy forbids it) and no third-party origin.

const $ = (id) => document.getElementById(id);

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
      showError(body.detail || `The server answered ${response.status}.`);
      return;
    }
    $("join-url").value = body.join_url;
    $("open").href = body.join_url;
    $("created").hidden = false;
    $("join-url").select();
  } catch (err) {
    showError("The server could not be reached. Please try again.");
  } finally {
    button.disabled = false;
  }
}

async function copyLink() {
  const link = $("join-url").value;
  try {
    await navigator.clipboard.writeText(link);
    $("copy").textContent = "Copied";
  } catch (err) {
    $("join-url").select();
  }
}

function joinByLink(event) {
  event.preventDefault();
  const text = $("join-link").value.trim();
  let url;
  try {
    url = new URL(text, window.location.origin);
  } catch (err) {
    showError("That is not a meeting link.");
    return;
  }
  const isMeeting = /^\/m\/[A-Za-z0-9_-]{22,64}$/.test(url.pathname);
  if (!isMeeting || !["http:", "https:"].includes(url.protocol)) {
    showError("That is not a meeting link.");
    return;
  }
  window.location.assign(url.href);
}

$("create").addEventListener("click", createMeeting);
$("copy").addEventListener("click", copyLink);
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
    link.href = "/signin";
    link.id = "signin-link";
    link.textContent = "Sign in";
    bar.replaceChildren(link);
    return;
  }
  const who = document.createElement("span");
  who.id = "signed-in-as";
  who.textContent = `Signed in as ${me.display_name}`;
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/signout";
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrf_token";
  token.value = me.csrf_token;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Sign out";
  form.append(token, button);
  bar.replaceChildren(who, document.createTextNode(" · "), form);
}

showAccount();
