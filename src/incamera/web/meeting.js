// The meeting page (/m/<id>): pre-join, the meeting itself, and the page after leaving.
// Entry module; the pieces live in signalling.js, media.js, devices.js, tiles.js, layout.js,
// i18n.js. `#name=...&autojoin=1` in the URL skips the pre-join screen.

import {
  canChooseSpeaker,
  errorReason,
  fillSelect,
  listDevices,
  loadPrefs,
  openBoth,
  openCamera,
  openMicrophone,
  savePrefs,
} from "./devices.js";
import { $, avatar, debounce, h, icon, isTyping } from "./dom.js";
import {
  initLanguage,
  language,
  LANGUAGES,
  onLanguageChange,
  setLanguage,
  t,
  translatePage,
} from "./i18n.js";
import { E2eeController } from "./e2ee/controller.js";
import { invitationProof, isInvitationKey, newInvitationKey } from "./e2ee/invitation.js";
import { prepareDeviceKey } from "./e2ee/mls.js";
import { e2eeSupported, FrameCrypto } from "./e2ee/transforms.js";
import { layerSize, orderTiles } from "./layout.js";
import { markStep, Publisher, Subscriber } from "./media.js";
import {
  isModerator,
  participantActions,
  renderAccessLists,
  renderLobby,
  renderModeratorControls,
  roleTags,
} from "./moderation.js";
import { JOIN_REFUSALS, meetingSocketUrl, SignallingClient } from "./signalling.js";
import { TileGrid, Tile } from "./tiles.js";
import { toast } from "./toasts.js";

const NAME_KEY = "incamera.name";
const meetingId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
const params = new URLSearchParams(window.location.hash.slice(1));

const prefs = loadPrefs();
const state = {
  joined: false,
  self: null,
  participants: new Map(), // id -> Participant (the others)
  quality: new Map(), // id -> good|fair|poor
  activeSpeaker: null,
  speakers: [], // most recent first
  chat: new Map(), // seq -> ChatMessage
  unread: 0,
  speakerView: false,
  micOn: prefs.micOn !== false,
  camOn: prefs.camOn !== false,
  hand: false,
  panel: null,
  joinedAt: 0,
  encrypted: null, // null until the welcome; true: E2EE meeting; false: NOT end-to-end encrypted
  policy: null, // the meeting's access policy (welcome.policy, `policy` messages)
  lobby: [], // moderators: the people waiting to be let in
  access: null, // moderators: open invitations and blocks (the `list_access` reply), once loaded
  endReason: null, // "removed" | "ended" once the server said so
};
const local = { mic: null, camera: null, screen: null, stream: new MediaStream() };
let signalling = null;
let publisher = null;
let subscriber = null;
let grid = null;
let frameCrypto = null; // the SFrame worker (e2ee/transforms.js)
let e2ee = null; // E2eeController while in an end-to-end encrypted meeting
// The next participant's MLS device key, made while the socket connects (it does not depend
// on the participant id the welcome brings): a promise, taken by the next E2eeController.
let preparedDeviceKey = null;
const tiles = new Map(); // "participant:source" -> Tile
const audioEls = new Map(); // mid -> <audio>
const sentLayers = new Map(); // mid -> "w x h" last sent
let audioBlockedToast = null;
let checkProblem = null; // set when the meeting check failed during an autojoin

// ---------------------------------------------------------------------------------------
// Screens

function showScreen(id) {
  for (const name of ["check", "prejoin", "lobby", "meeting", "ended"]) {
    $(name).hidden = name !== id;
  }
}

async function checkMeeting() {
  try {
    const response = await fetch(`/api/meetings/${encodeURIComponent(meetingId)}`, {
      cache: "no-store",
    });
    if (response.ok) return "ok";
    if (response.status === 404) return "notFound";
    if (response.status === 410) return "ended";
    return "unreachable";
  } catch {
    return "unreachable";
  }
}

/** The server refused the join (locked, PIN, sign-in, removed, declined, too many tries). */
function showRefusal(code) {
  const message = t(`refused.${code}`);
  if (["pin_required", "wrong_pin"].includes(code) && !params.get("autojoin")) {
    showScreen("prejoin");
    $("pin-row").hidden = false;
    $("pin").value = "";
    showPrejoinError(message);
    $("pin").focus();
    return;
  }
  showScreen("check");
  $("check-text").textContent = message;
  $("check-text").dataset.i18n = `refused.${code}`;
  $("check-home").hidden = false;
}

function showCheckProblem(problem) {
  showScreen("check");
  $("check-text").textContent = t(`check.${problem}`);
  $("check-text").dataset.i18n = `check.${problem}`;
  $("check-home").hidden = false;
}

// ---------------------------------------------------------------------------------------
// Pre-join

let levelMeter = null;

function setPreviewTrack(track) {
  const preview = $("preview");
  preview.srcObject = track ? new MediaStream([track]) : null;
  $("preview-off").hidden = Boolean(track);
}

function updatePrejoinButtons() {
  const mic = $("pre-mic");
  mic.setAttribute("aria-pressed", String(!state.micOn));
  mic.dataset.i18nLabel = state.micOn ? "controls.mute" : "controls.unmute";
  const cam = $("pre-cam");
  cam.setAttribute("aria-pressed", String(!state.camOn));
  cam.dataset.i18nLabel = state.camOn ? "controls.cameraOff" : "controls.cameraOn";
  translatePage($("prejoin"));
  setPreviewTrack(state.camOn ? local.camera : null);
  const avatarBox = $("preview-avatar");
  const name = $("name").value.trim() || "?";
  avatarBox.replaceWith(Object.assign(avatar(name, name), { id: "preview-avatar" }));
}

function startLevelMeter(track) {
  levelMeter?.stop();
  levelMeter = null;
  if (!track || typeof AudioContext === "undefined") return;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const bar = $("mic-level-bar");
  let frame = 0;
  const tick = () => {
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    bar.style.width = `${state.micOn ? Math.min(100, (peak / 64) * 100) : 0}%`;
    frame = requestAnimationFrame(tick);
  };
  tick();
  const resume = () => context.resume().catch(() => {});
  document.addEventListener("pointerdown", resume, { once: true });
  levelMeter = {
    stop() {
      cancelAnimationFrame(frame);
      context.close().catch(() => {});
      bar.style.width = "0";
    },
  };
}

async function refreshDeviceLists() {
  const devices = await listDevices();
  const sets = [
    ["camera-select", "set-camera"],
    ["mic-select", "set-mic"],
    ["speaker-select", "set-speaker"],
  ];
  const current = {
    camera: local.camera?.getSettings().deviceId || prefs.camera,
    mic: local.mic?.getSettings().deviceId || prefs.mic,
    speaker: prefs.speaker,
  };
  for (const id of sets[0]) fillSelect($(id), devices.cameras, current.camera, t("prejoin.camera"));
  for (const id of sets[1]) fillSelect($(id), devices.mics, current.mic, t("prejoin.microphone"));
  const speakers = canChooseSpeaker() ? devices.speakers : [];
  for (const id of sets[2]) fillSelect($(id), speakers, current.speaker, t("prejoin.speaker"));
  $("speaker-row").hidden = speakers.length === 0;
  $("set-speaker-row").hidden = speakers.length === 0;
}

function showPrejoinError(message) {
  const error = $("prejoin-error");
  error.textContent = message || "";
  error.hidden = !message;
}

async function startPreview() {
  const opened = await openBoth(prefs, { wantCamera: state.camOn, wantMic: true });
  local.camera = opened.camera;
  local.mic = opened.mic;
  const problems = [];
  if (opened.cameraError) {
    const reason = errorReason(opened.cameraError);
    problems.push(t("prejoin.cameraError", { reason: reason === "permission" ? t("prejoin.permissionDenied") : reason }));
  }
  if (opened.micError) {
    const reason = errorReason(opened.micError);
    problems.push(t("prejoin.micError", { reason: reason === "permission" ? t("prejoin.permissionDenied") : reason }));
  }
  showPrejoinError(problems.join(" "));
  if (!local.camera) state.camOn = false;
  if (!local.mic) state.micOn = false;
  if (local.mic) local.mic.enabled = state.micOn;
  updatePrejoinButtons();
  startLevelMeter(local.mic);
  await refreshDeviceLists();
}

async function switchCamera(deviceId) {
  prefs.camera = deviceId;
  savePrefs(prefs);
  if (!state.camOn && !state.joined) return;
  const old = local.camera;
  try {
    const track = await openCamera(deviceId);
    local.camera = track;
    old?.stop();
    if (state.joined) {
      await publisher?.replaceTrack("camera", state.camOn ? track : null);
      if (!state.camOn) track.stop();
      renderTiles();
    } else {
      updatePrejoinButtons();
    }
  } catch {
    toast(t("toast.cameraFailed"));
  }
}

async function switchMic(deviceId) {
  prefs.mic = deviceId;
  savePrefs(prefs);
  const old = local.mic;
  try {
    const track = await openMicrophone(deviceId);
    track.enabled = state.micOn;
    local.mic = track;
    old?.stop();
    if (state.joined) await publisher?.replaceTrack("mic", track);
    else startLevelMeter(track);
  } catch {
    toast(t("toast.micFailed"));
  }
}

async function switchSpeaker(deviceId) {
  prefs.speaker = deviceId;
  savePrefs(prefs);
  for (const el of audioEls.values()) {
    await el.setSinkId?.(deviceId).catch(() => {});
  }
}

function bindDeviceSelects() {
  for (const id of ["camera-select", "set-camera"]) {
    $(id).addEventListener("change", (event) => switchCamera(event.target.value));
  }
  for (const id of ["mic-select", "set-mic"]) {
    $(id).addEventListener("change", (event) => switchMic(event.target.value));
  }
  for (const id of ["speaker-select", "set-speaker"]) {
    $(id).addEventListener("change", (event) => switchSpeaker(event.target.value));
  }
  navigator.mediaDevices?.addEventListener?.("devicechange", () => refreshDeviceLists());
}

function setupPrejoin() {
  let stored = "";
  try {
    stored = localStorage.getItem(NAME_KEY) || "";
  } catch {
    // no storage
  }
  $("name").value = stored;
  $("name").addEventListener("input", () => updatePrejoinButtons());
  $("pre-mic").addEventListener("click", () => {
    state.micOn = !state.micOn;
    if (local.mic) local.mic.enabled = state.micOn;
    updatePrejoinButtons();
  });
  $("pre-cam").addEventListener("click", async () => {
    state.camOn = !state.camOn;
    if (state.camOn && (!local.camera || local.camera.readyState === "ended")) {
      try {
        local.camera = await openCamera(prefs.camera);
      } catch {
        state.camOn = false;
        toast(t("toast.cameraFailed"));
      }
    } else if (!state.camOn && local.camera) {
      local.camera.stop(); // the camera light goes off
      local.camera = null;
    }
    updatePrejoinButtons();
  });
  $("prejoin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("name").value.trim();
    if (!name) {
      showPrejoinError(t("prejoin.nameMissing"));
      $("name").focus();
      return;
    }
    join(name);
  });
}

// ---------------------------------------------------------------------------------------
// Joining

function rememberName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // no storage
  }
}

async function join(name, { devices = null } = {}) {
  name = name.slice(0, 64);
  rememberName(name);
  prefs.micOn = state.micOn;
  prefs.camOn = state.camOn;
  savePrefs(prefs);
  const button = $("join");
  button.disabled = true;
  button.textContent = t("prejoin.joining");
  levelMeter?.stop();

  // `#test_skip_mls=1`: a TEST HOOK the server refuses unless started with testing.hooks.
  const helloExtra = params.get("test_skip_mls") === "1" ? { test_skip_mls: true } : {};
  if (params.get("test_bypass_lobby") === "1") helloExtra.test_bypass_lobby = true;
  // The moderator link (#mod=...) and a personal invitation (#invite=...) live in the URL
  // fragment, which is never sent to the server with the page request.
  if (params.get("mod")) helloExtra.moderator_key = params.get("mod");
  if (params.get("invite")) helloExtra.invite = params.get("invite");
  const pin = ($("pin").value || params.get("pin") || "").trim();
  if (pin) helloExtra.pin = pin;
  signalling = new SignallingClient(meetingSocketUrl(meetingId), name, { helloExtra });
  signalling.addEventListener("message", (event) => onMessage(event.detail));
  signalling.addEventListener("welcome", (event) => onWelcome(event.detail));
  signalling.addEventListener("state", (event) => onSignallingState(event.detail.state));
  signalling.addEventListener("closed", (event) => onClosed(event.detail.reason));

  // The socket first: the welcome is a network round trip away, and what follows runs
  // meanwhile (in this same task, so before any message of the socket is handled).
  const joined = signalling.join();
  // The SFrame worker starts loading now; it is used if the welcome says E2EE.
  frameCrypto ??= e2eeSupported() ? new FrameCrypto() : null;
  if (frameCrypto) preparedDeviceKey ??= prepareDeviceKey().catch(() => null);
  frameCrypto?.addEventListener("keyframe", (event) => {
    markStep("key_frame_request");
    signalling?.send("key_frame", { mid: event.detail.mid });
  });
  // Before the welcome: the server offers the existing tracks right after it.
  newMediaSessions();
  let welcome;
  try {
    // Devices (autojoin) and the socket open in parallel: joining is on the critical path.
    const [w, opened] = await Promise.all([joined, devices]);
    welcome = w;
    if (opened) {
      local.camera = opened.camera;
      local.mic = opened.mic;
      if (!local.camera) state.camOn = false;
      if (!local.mic) state.micOn = false;
    }
  } catch (err) {
    button.disabled = false;
    button.textContent = t("prejoin.join");
    if (JOIN_REFUSALS.has(err?.code)) {
      showRefusal(err.code);
      return;
    }
    if (checkProblem) showCheckProblem(checkProblem);
    else if (err?.code === "meeting_closed") showCheckProblem("ended");
    else if (err?.code === "meeting_not_found") showCheckProblem("notFound");
    else if ($("prejoin").hidden) showCheckProblem("unreachable");
    else showPrejoinError(t("toast.error", { reason: err?.message || String(err) }));
    return;
  }
  enterMeeting(welcome);
  await startMedia();
}

function enterMeeting(welcome) {
  state.joined = true;
  state.joinedAt = Date.now();
  showScreen("meeting");
  grid ??= new TileGrid({
    videos: $("videos"),
    grid: $("grid"),
    stage: $("stage"),
    pager: $("pager"),
    prev: $("page-prev"),
    next: $("page-next"),
    label: $("page-label"),
    onChange: scheduleLayers,
  });
  updateToolbar();
  renderAll();
  refreshDeviceLists();
}

function applyRoster(welcome) {
  state.self = { ...welcome.participant };
  if (welcome.policy) onPolicy(welcome.policy);
  const before = new Set(state.participants.keys());
  state.participants = new Map(welcome.participants.map((p) => [p.id, p]));
  for (const id of before) {
    if (!state.participants.has(id)) state.quality.delete(id);
  }
  for (const message of welcome.chat || []) addChat(message, { quiet: true });
}

function newMediaSessions() {
  publisher?.close();
  subscriber?.close();
  const crypto = state.encrypted === false ? null : frameCrypto;
  publisher = new Publisher(signalling, { frameCrypto: crypto });
  subscriber = new Subscriber(signalling, { frameCrypto: crypto });
  subscriber.prepare();
  publisher.addEventListener("ice", () => updateConnectionBanner());
  subscriber.addEventListener("ice", () => updateConnectionBanner());
  subscriber.addEventListener("tracks", () => {
    syncAudio();
    renderTiles();
    scheduleLayers();
  });
  sentLayers.clear();
}

async function startMedia() {
  for (const track of local.stream.getTracks()) local.stream.removeTrack(track);
  if (local.mic) {
    local.mic.enabled = state.micOn;
    local.stream.addTrack(local.mic);
  }
  if (local.camera && !state.camOn) {
    local.camera.stop();
    local.camera = null;
  }
  if (local.camera) local.stream.addTrack(local.camera);
  try {
    await publisher.start(local.mic, state.camOn ? local.camera : null, local.stream);
  } catch (err) {
    console.error("incamera: publishing failed", err);
    toast(t("toast.error", { reason: err?.message || String(err) }));
  }
  sendOwnState();
  renderTiles();
}

/** Tells the server the mute and hand states (after joining and after a resume). */
function sendOwnState() {
  if (!signalling) return;
  signalling.send("mute", { source: "mic", muted: !state.micOn });
  signalling.send("mute", { source: "camera", muted: !state.camOn });
  if (state.hand) signalling.send("hand", { raised: true });
  Object.assign(state.self, {
    audio_muted: !state.micOn,
    video_muted: !state.camOn,
    hand_raised: state.hand,
  });
}

/**
 * Sets up end-to-end encryption for a (new) membership. Runs synchronously on the welcome,
 * before the server's first subscribe offer is applied, so every receiver gets its transform.
 */
function setupE2ee(welcome) {
  e2ee?.close();
  e2ee = null;
  state.encrypted = Boolean(welcome.e2ee);
  if (!state.encrypted) {
    // Not end-to-end encrypted (administrator policy): no transforms, and everyone is told.
    frameCrypto?.close();
    frameCrypto = null;
    if (publisher) publisher.frameCrypto = null;
    if (subscriber) subscriber.frameCrypto = null;
    toast(t("e2ee.off"));
    renderE2ee();
    return;
  }
  if (!frameCrypto) {
    toast(t("e2ee.unsupported"));
    renderE2ee();
    signalling?.leave();
    return;
  }
  frameCrypto.reset();
  if (publisher) publisher.frameCrypto = frameCrypto;
  if (subscriber) subscriber.frameCrypto = frameCrypto;
  e2ee = new E2eeController({
    signalling,
    self: { id: welcome.participant.id, name: welcome.participant.name },
    groupId: welcome.e2ee.group_id,
    participants: () => state.participants,
    frameCrypto,
    isModerator: () => isModerator(state.self),
    deviceKey: preparedDeviceKey, // a new participant (a later welcome) makes a new one
  });
  preparedDeviceKey = null;
  e2ee.setPolicy(state.policy);
  e2ee.addEventListener("change", () => {
    renderE2ee();
    renderPeople();
  });
  e2ee.addEventListener("joined", (event) => {
    const { names, first } = event.detail;
    if (first) toast(t("e2ee.youJoined"));
    for (const name of names) toast(t("e2ee.joined", { name }));
  });
  e2ee.addEventListener("chat", (event) => addChat(event.detail));
  // A personal invitation's key (`#ik=`, never sent to the server): prove it to the
  // group's moderators before asking to be added (e2ee/invitation.js).
  const invitationKey = params.get("ik");
  const proven = isInvitationKey(invitationKey)
    ? invitationProof(invitationKey, welcome.e2ee.group_id, welcome.participant.id)
        .then((proof) => signalling?.request("invite_proof", { proof }))
        .catch((err) => console.warn("incamera: the invitation proof was not sent", err))
    : Promise.resolve();
  const controller = e2ee;
  proven
    .then(() => controller.start())
    .catch((err) => {
      console.error("incamera: E2EE start failed", err);
      controller.fail(err?.message || String(err));
    });
  renderE2ee();
}

function renderE2ee() {
  const badge = $("e2ee-badge");
  const text = $("e2ee-text");
  const code = $("security-code");
  let key;
  let detail = "";
  if (state.encrypted === null) {
    badge.hidden = true;
    code.hidden = true;
    return;
  } else if (state.encrypted === false) {
    key = "off";
    detail = t("e2ee.offDetail");
  } else if (!e2ee) {
    key = "failed";
    detail = t("e2ee.unsupported");
  } else if (e2ee.removed) {
    key = "failed";
    detail = t("e2ee.removed");
  } else if (e2ee.failure) {
    key = "failed";
    detail = t("e2ee.failed", { reason: e2ee.failure });
  } else if (e2ee.epoch === null) {
    key = "pending";
  } else {
    key = "on";
    detail = t("e2ee.onDetail");
  }
  badge.hidden = false;
  badge.dataset.state = key;
  text.textContent = t(key === "failed" ? "e2ee.off" : `e2ee.${key}`);
  badge.title = detail;
  badge.setAttribute("aria-label", detail ? `${text.textContent}. ${detail}` : text.textContent);
  const status = e2ee?.status();
  code.hidden = !(status && status.securityCode);
  if (status?.securityCode) {
    $("security-code-value").textContent = status.securityCode;
    $("security-code-epoch").textContent = t("e2ee.epoch", { epoch: status.epoch });
  }
}

function onWelcome({ welcome, reconnect }) {
  if (!reconnect) {
    markStep("welcome");
    // At once, not when join() resumes (it also waits for the devices): the messages that
    // follow the welcome (device keys, MLS) update this roster and must not be overwritten.
    applyRoster(welcome);
    setupE2ee(welcome);
    return; // the rest of the first welcome is handled by join()
  }
  if (!welcome.resumed) setupE2ee(welcome);
  if (welcome.resumed) {
    applyRoster(welcome);
    sentLayers.clear();
    sendOwnState();
    publisher?.recover().catch((err) => console.warn("incamera: republish failed", err));
    subscriber?.recover();
  } else {
    // The server forgot us (the resume window passed): join again as a new participant.
    stopScreenShare({ publish: false });
    applyRoster(welcome);
    newMediaSessions(); // synchronously, before the offers that follow the welcome
    startMedia();
  }
  toast(t("toast.reconnected"));
  renderAll();
}

function onSignallingState(sigState) {
  if (sigState === "reconnecting" && state.joined) {
    toast(t("toast.reconnecting"));
  }
  updateConnectionBanner();
}

function updateConnectionBanner() {
  const banner = $("banner");
  const sigDown = signalling && signalling.state === "reconnecting";
  const iceDown = [publisher, subscriber].some(
    (s) => s?.pc && ["disconnected", "failed"].includes(s.pc.iceConnectionState),
  );
  banner.hidden = !(state.joined && (sigDown || iceDown));
  banner.textContent = t("banner.reconnecting");
  if (state.self) {
    state.self.reconnecting = Boolean(sigDown || iceDown);
    renderTiles();
  }
}

function onClosed(reason) {
  if (!state.joined) return;
  cleanup();
  const heading =
    {
      left: "left.heading",
      meeting_closed: state.endReason === "ended" ? "left.endedHeading" : "left.closedHeading",
      removed: "left.removedHeading",
    }[reason] ||
    (state.endReason === "ended" ? "left.endedHeading" : null) ||
    (state.endReason === "removed" ? "left.removedHeading" : null) ||
    "left.lostHeading";
  $("ended-heading").dataset.i18n = heading;
  $("ended-heading").textContent = t(heading);
  showScreen("ended");
  $("ended-heading").focus();
}

function cleanup() {
  state.joined = false;
  e2ee?.close();
  e2ee = null;
  frameCrypto?.close();
  frameCrypto = null;
  publisher?.close();
  subscriber?.close();
  for (const track of [local.mic, local.camera, local.screen]) track?.stop();
  local.mic = local.camera = local.screen = null;
  for (const tile of tiles.values()) tile.destroy();
  tiles.clear();
  for (const el of audioEls.values()) el.remove();
  audioEls.clear();
  clearInterval(clockTimer);
}

function leave() {
  signalling?.leave(); // fires "closed" -> onClosed("left")
}

// ---------------------------------------------------------------------------------------
// Server messages

function onMessage(message) {
  if (e2ee?.onMessage(message)) return;
  switch (message.type) {
    case "participant_joined": {
      const p = message.participant;
      state.participants.set(p.id, p);
      toast(t("toast.joined", { name: p.name }));
      renderAll();
      checkInvitations();
      break;
    }
    case "participant_left": {
      const p = state.participants.get(message.id);
      state.participants.delete(message.id);
      state.quality.delete(message.id);
      state.speakers = state.speakers.filter((id) => id !== message.id);
      if (state.activeSpeaker === message.id) state.activeSpeaker = null;
      if (p) toast(t("toast.left", { name: p.name }));
      renderAll();
      break;
    }
    case "participant_updated": {
      const p = message.participant;
      if (state.self && p.id === state.self.id) {
        const promoted = isModerator(p) && !isModerator(state.self);
        if (promoted) toast(t("mod.roleModerator"));
        if (!isModerator(p)) state.access = null;
        if (promoted && state.panel === "settings") queueMicrotask(loadAccessLists);
        // Our own toggles are decided here; take the rest from the server.
        state.self = {
          ...p,
          audio_muted: !state.micOn,
          video_muted: !state.camOn,
          hand_raised: state.hand,
          reconnecting: state.self.reconnecting,
        };
      } else {
        const before = state.participants.get(p.id);
        if (p.hand_raised && !before?.hand_raised) toast(t("toast.hand", { name: p.name }));
        state.participants.set(p.id, p);
      }
      renderAll();
      checkInvitations();
      break;
    }
    case "active_speaker": {
      state.activeSpeaker = message.id ?? null;
      if (message.id) {
        state.speakers = [message.id, ...state.speakers.filter((id) => id !== message.id)];
      }
      renderTiles();
      break;
    }
    case "connection_quality":
      state.quality.set(message.id, message.quality);
      renderTiles();
      break;
    case "chat":
      addChat(message.message);
      break;
    case "lobby_wait":
      showScreen("lobby");
      $("lobby-heading").focus();
      break;
    case "lobby":
      onLobby(message.waiting || []);
      break;
    case "policy": {
      const { type: _type, ...policy } = message;
      onPolicy(policy);
      break;
    }
    case "moderated":
      onModerated(message);
      break;
    case "removed":
      state.endReason = "removed";
      break;
    case "meeting_ended":
      state.endReason = "ended";
      break;
    case "subscribe":
      markStep("subscribe_offer");
      subscriber?.onOffer(message).catch((err) => {
        console.error("incamera: could not apply a subscribe offer", err);
      });
      break;
    case "error":
      if (message.code === "negotiation_failed") {
        toast(t("toast.error", { reason: message.reason || message.code }));
      }
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------
// Tiles, audio and layers

function participantById(id) {
  if (state.self && id === state.self.id) return state.self;
  return state.participants.get(id);
}

function syncTiles() {
  const wanted = new Map(); // key -> {participantId, source, local, track}
  const self = state.self;
  if (self) {
    wanted.set(`${self.id}:camera`, {
      participantId: self.id,
      source: "camera",
      local: true,
      track: state.camOn ? local.camera : null,
    });
    if (local.screen) {
      wanted.set(`${self.id}:screen`, {
        participantId: self.id,
        source: "screen",
        local: true,
        track: local.screen,
      });
    }
  }
  const bindings = subscriber ? Array.from(subscriber.bindings.values()) : [];
  const trackOf = (id, source) =>
    bindings.find((b) => b.participant === id && b.source === source && b.kind === "video")
      ?.track || null;
  for (const p of state.participants.values()) {
    wanted.set(`${p.id}:camera`, {
      participantId: p.id,
      source: "camera",
      local: false,
      track: trackOf(p.id, "camera"),
    });
    const screen = trackOf(p.id, "screen");
    if (screen) {
      wanted.set(`${p.id}:screen`, {
        participantId: p.id,
        source: "screen",
        local: false,
        track: screen,
      });
    }
  }
  for (const [key, tile] of tiles) {
    if (!wanted.has(key)) {
      tile.destroy();
      tiles.delete(key);
    }
  }
  for (const [key, want] of wanted) {
    let tile = tiles.get(key);
    if (!tile) {
      tile = new Tile(want);
      tiles.set(key, tile);
    }
    tile.setTrack(want.track);
    const participant = participantById(want.participantId);
    tile.update(participant, {
      self: want.local,
      quality: state.quality.get(want.participantId) || null,
      speaking: state.activeSpeaker === want.participantId,
    });
  }
}

function stageKey() {
  const screens = Array.from(tiles.values()).filter((tile) => tile.source === "screen");
  const remoteScreen = screens.find((tile) => !tile.local);
  if (remoteScreen) return remoteScreen.key;
  if (screens.length) return screens[0].key;
  if (!state.speakerView || state.participants.size === 0) return null;
  const speaker =
    state.activeSpeaker && state.activeSpeaker !== state.self?.id && state.participants.has(state.activeSpeaker)
      ? state.activeSpeaker
      : state.speakers.find((id) => state.participants.has(id)) ||
        state.participants.keys().next().value;
  return `${speaker}:camera`;
}

function renderTiles() {
  if (!state.joined || !grid) return;
  syncTiles();
  const cameraTiles = Array.from(tiles.values()).map((tile) => ({
    tile,
    id: tile.participantId,
    hand: Boolean(participantById(tile.participantId)?.hand_raised) && tile.source === "camera",
  }));
  const ordered = orderTiles(cameraTiles, state.self?.id, state.speakers).map((e) => e.tile);
  // Screens first among the rest: they are the content people look at.
  ordered.sort((a, b) => (a.source === "screen" ? 0 : 1) - (b.source === "screen" ? 0 : 1));
  grid.set(ordered, stageKey());
  $("alone").hidden = state.participants.size > 0;
}

function syncAudio() {
  const bindings = subscriber ? Array.from(subscriber.bindings.values()) : [];
  const audio = bindings.filter((b) => b.kind === "audio");
  const mids = new Set(audio.map((b) => b.mid));
  for (const [mid, el] of audioEls) {
    if (!mids.has(mid)) {
      el.srcObject = null;
      el.remove();
      audioEls.delete(mid);
    }
  }
  for (const binding of audio) {
    let el = audioEls.get(binding.mid);
    if (!el) {
      el = h("audio", { autoplay: true });
      $("audio-sinks").append(el);
      audioEls.set(binding.mid, el);
      if (prefs.speaker) el.setSinkId?.(prefs.speaker).catch(() => {});
    }
    if (el.srcObject?.getAudioTracks()[0] !== binding.track) {
      el.srcObject = new MediaStream([binding.track]);
    }
    el.dataset.participant = binding.participant;
    el.play().catch((err) => {
      if (err?.name === "NotAllowedError") showAudioBlocked();
    });
  }
}

function showAudioBlocked() {
  if (audioBlockedToast?.isConnected) return;
  audioBlockedToast = toast(t("toast.audioBlocked"), {
    timeout: 0,
    onClick: () => {
      for (const el of audioEls.values()) el.play().catch(() => {});
    },
  });
}

function sendLayers() {
  if (!subscriber || !signalling?.isOpen) return;
  const dpr = window.devicePixelRatio || 1;
  for (const binding of subscriber.bindings.values()) {
    if (binding.kind !== "video") continue;
    const tile = tiles.get(`${binding.participant}:${binding.source}`);
    const rendered = tile ? tile.renderedSize() : { width: 0, height: 0 };
    const size = layerSize(rendered.width, rendered.height, dpr, rendered.width > 0);
    const key = `${size.width}x${size.height}`;
    if (sentLayers.get(binding.mid) === key) continue;
    if (signalling.send("layer", { mid: binding.mid, width: size.width, height: size.height })) {
      sentLayers.set(binding.mid, key);
    }
  }
}

const scheduleLayers = debounce(sendLayers, 250);

// ---------------------------------------------------------------------------------------
// People and chat panels

function renderPeople() {
  const everyone = [state.self, ...state.participants.values()].filter(Boolean);
  $("people-count").textContent = String(everyone.length);
  $("people-heading").textContent = t("people.heading", { count: everyone.length });
  const sorted = everyone.slice().sort((a, b) => {
    if (a === state.self) return -1;
    if (b === state.self) return 1;
    if (a.hand_raised !== b.hand_raised) return a.hand_raised ? -1 : 1;
    return a.name.localeCompare(b.name, language());
  });
  const list = $("people-list");
  list.replaceChildren(
    ...sorted.map((p) => {
      const self = p === state.self;
      const notes = [];
      if (p.hand_raised) notes.push(t("people.hand"));
      notes.push(p.audio_muted ? t("people.muted") : t("people.unmuted"));
      if (p.video_muted) notes.push(t("people.cameraOff"));
      if (p.screen_sharing) notes.push(t("people.sharing"));
      if (p.reconnecting) notes.push(t("people.reconnecting"));
      const verified = !e2ee || self || e2ee.verified(p.id);
      if (!verified) notes.push(t("e2ee.unverified"));
      notes.push(...roleTags(p));
      return h(
        "li",
        {
          dataset: {
            participant: p.id,
            audioMuted: String(Boolean(p.audio_muted)),
            hand: String(Boolean(p.hand_raised)),
            verified: String(verified),
          },
          "aria-label": `${self ? t("tile.you", { name: p.name }) : p.name}: ${notes.join(", ")}`,
        },
        avatar(p.name, p.id),
        h(
          "span",
          { class: "who" },
          self ? t("tile.you", { name: p.name }) : p.name,
          ...roleTags(p).map((tag) => h("small", { class: "tag", text: tag })),
          p.reconnecting ? h("small", { text: t("people.reconnecting") }) : null,
          verified ? null : h("small", { class: "unverified", text: t("e2ee.unverified") }),
        ),
        !self && isModerator(state.self)
          ? participantActions(p, moderationActions, { encryptionAdmit: !verified && lobbyWithholds() })
          : null,
        p.hand_raised ? icon("hand", "hand") : null,
        p.screen_sharing ? icon("screen") : null,
        p.video_muted ? icon("cam-off") : icon("cam"),
        p.audio_muted ? icon("mic-off", "alert") : icon("mic"),
      );
    }),
  );
}

const timeFormat = () =>
  new Intl.DateTimeFormat(language(), { hour: "2-digit", minute: "2-digit" });

function addChat(message, { quiet = false } = {}) {
  if (state.chat.has(message.seq)) return;
  state.chat.set(message.seq, message);
  const mine = state.self && message.from === state.self.id;
  if (!quiet && !mine && state.panel !== "chat") {
    state.unread += 1;
    toast(t("toast.chat", { name: message.name, text: message.text }));
  }
  renderChat();
}

function renderChat() {
  const log = $("chat-log");
  const messages = Array.from(state.chat.values()).sort((a, b) => a.seq - b.seq);
  const format = timeFormat();
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.replaceChildren(
    ...messages.map((m) => {
      const mine = state.self && m.from === state.self.id;
      const when = typeof m.ts === "number" ? format.format(new Date(m.ts * 1000)) : "";
      return h(
        "li",
        { class: mine ? "mine" : "", dataset: { seq: String(m.seq) } },
        h("span", { class: "meta", text: `${mine ? t("chat.you") : m.name} · ${when}` }),
        h("span", { class: "text", text: m.text }),
      );
    }),
  );
  $("chat-empty").hidden = messages.length > 0;
  if (stick) log.scrollTop = log.scrollHeight;
  const badge = $("chat-badge");
  badge.hidden = state.unread === 0;
  badge.textContent = state.unread > 99 ? "99+" : String(state.unread);
  $("btn-chat").setAttribute(
    "aria-label",
    state.unread ? `${t("controls.chat")}, ${t("chat.unread", { count: state.unread })}` : t("controls.chat"),
  );
}

function sendChat(event) {
  event?.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (state.encrypted) {
    // End-to-end encrypted: an MLS application message; the server relays ciphertext.
    if (!e2ee) return;
    input.value = "";
    e2ee
      .sendChat(text.slice(0, 2000))
      .then((message) => addChat(message))
      .catch((err) => {
        input.value = text;
        toast(t("toast.error", { reason: err?.message || String(err) }));
      });
  } else if (signalling?.send("chat", { text: text.slice(0, 2000) })) {
    input.value = "";
  }
  input.focus();
}

const PANEL_BUTTONS = { people: "btn-people", chat: "btn-chat", settings: "btn-settings" };

function togglePanel(name, { focus = true } = {}) {
  const opening = state.panel !== name;
  const previous = state.panel;
  state.panel = opening ? name : null;
  for (const [panel, button] of Object.entries(PANEL_BUTTONS)) {
    $(`${panel}-panel`).hidden = state.panel !== panel;
    $(button).setAttribute("aria-expanded", String(state.panel === panel));
  }
  if (opening && state.panel === "settings") loadAccessLists();
  if (state.panel === "chat") {
    state.unread = 0;
    renderChat();
    const log = $("chat-log");
    log.scrollTop = log.scrollHeight;
  }
  if (!focus) return;
  if (state.panel === "chat") $("chat-input").focus();
  else if (state.panel === "people") $("people-heading").focus();
  else if (state.panel === "settings") $("settings-heading").focus();
  else if (previous) $(PANEL_BUTTONS[previous]).focus();
}

// ---------------------------------------------------------------------------------------
// Controls

function setToggle(button, pressed, labelKey) {
  button.setAttribute("aria-pressed", String(pressed));
  button.dataset.i18nLabel = labelKey;
  button.setAttribute("aria-label", t(labelKey));
  button.title = t(labelKey);
}

function updateToolbar() {
  setToggle($("btn-mic"), !state.micOn, state.micOn ? "controls.mute" : "controls.unmute");
  setToggle($("btn-cam"), !state.camOn, state.camOn ? "controls.cameraOff" : "controls.cameraOn");
  setToggle($("btn-share"), Boolean(local.screen), local.screen ? "controls.stopShare" : "controls.share");
  setToggle($("btn-hand"), state.hand, state.hand ? "controls.lowerHand" : "controls.raiseHand");
  setToggle($("btn-view"), state.speakerView, state.speakerView ? "controls.gridView" : "controls.speakerView");
  $("btn-share").disabled = !navigator.mediaDevices?.getDisplayMedia;
}

async function toggleMic() {
  if (!local.mic) {
    try {
      local.mic = await openMicrophone(prefs.mic);
      await publisher?.replaceTrack("mic", local.mic);
    } catch {
      toast(t("toast.micFailed"));
      return;
    }
    state.micOn = true;
  } else {
    state.micOn = !state.micOn;
  }
  local.mic.enabled = state.micOn;
  signalling?.send("mute", { source: "mic", muted: !state.micOn });
  if (state.self) state.self.audio_muted = !state.micOn;
  prefs.micOn = state.micOn;
  savePrefs(prefs);
  updateToolbar();
  renderAll();
}

// Toggles run one after the other: a key pressed again while the camera is still opening or
// closing is queued, not dropped (dropping it left the camera in the wrong state).
let cameraQueue = Promise.resolve();

function toggleCamera() {
  cameraQueue = cameraQueue.then(toggleCameraNow, toggleCameraNow);
  return cameraQueue;
}

async function toggleCameraNow() {
  const turningOn = !state.camOn;
  // The button answers at once; the camera follows.
  state.camOn = turningOn;
  updateToolbar();
  try {
    if (turningOn) {
      try {
        local.camera = await openCamera(prefs.camera);
      } catch {
        state.camOn = false;
        updateToolbar();
        toast(t("toast.cameraFailed"));
        return;
      }
      await publisher?.replaceTrack("camera", local.camera);
    } else {
      await publisher?.replaceTrack("camera", null);
      local.camera?.stop(); // the camera light goes off
      local.camera = null;
    }
    signalling?.send("mute", { source: "camera", muted: !state.camOn });
    if (state.self) state.self.video_muted = !state.camOn;
    prefs.camOn = state.camOn;
    savePrefs(prefs);
    renderAll();
  } catch (error) {
    console.error("camera toggle failed", error);
  }
}

async function toggleScreenShare() {
  if (local.screen) {
    await stopScreenShare();
    return;
  }
  let track;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 15, max: 30 } },
      audio: false,
    });
    track = stream.getVideoTracks()[0];
  } catch (err) {
    if (err?.name !== "NotAllowedError") toast(t("toast.shareFailed"));
    return;
  }
  local.screen = track;
  track.addEventListener("ended", () => stopScreenShare());
  if (state.self) state.self.screen_sharing = true;
  updateToolbar();
  renderAll();
  try {
    await publisher.startScreen(track);
  } catch (err) {
    console.error("incamera: screen share failed", err);
    toast(t("toast.shareFailed"));
    await stopScreenShare();
  }
}

async function stopScreenShare({ publish = true } = {}) {
  const track = local.screen;
  if (!track) return;
  local.screen = null;
  track.stop();
  if (state.self) state.self.screen_sharing = false;
  updateToolbar();
  renderAll();
  if (publish) {
    await publisher?.stopScreen().catch((err) => console.warn("incamera: unshare failed", err));
  }
}

function toggleHand() {
  state.hand = !state.hand;
  signalling?.send("hand", { raised: state.hand });
  if (state.self) state.self.hand_raised = state.hand;
  updateToolbar();
  renderAll();
}

function toggleView() {
  state.speakerView = !state.speakerView;
  updateToolbar();
  renderTiles();
}

async function copyLink() {
  const url = `${window.location.origin}/m/${meetingId}`;
  try {
    await navigator.clipboard.writeText(url);
    toast(t("grid.copied"));
  } catch {
    toast(url, { timeout: 8000 });
  }
}

const SHORTCUTS = {
  m: toggleMic,
  v: toggleCamera,
  s: toggleScreenShare,
  h: toggleHand,
  g: toggleView,
  c: () => togglePanel("chat"),
  p: () => togglePanel("people"),
};

function onKeyDown(event) {
  if (!state.joined) return;
  if (event.key === "Escape" && state.panel) {
    togglePanel(state.panel);
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event)) return;
  const action = SHORTCUTS[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
}

function bindControls() {
  $("btn-mic").addEventListener("click", toggleMic);
  $("btn-cam").addEventListener("click", toggleCamera);
  $("btn-share").addEventListener("click", toggleScreenShare);
  $("btn-hand").addEventListener("click", toggleHand);
  $("btn-view").addEventListener("click", toggleView);
  $("btn-people").addEventListener("click", () => togglePanel("people"));
  $("btn-chat").addEventListener("click", () => togglePanel("chat"));
  $("btn-settings").addEventListener("click", () => togglePanel("settings"));
  $("btn-leave").addEventListener("click", leave);
  for (const button of document.querySelectorAll(".close-panel")) {
    button.addEventListener("click", () => togglePanel(button.dataset.panel));
  }
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendChat(event);
  });
  $("copy-link").addEventListener("click", copyLink);
  $("rejoin").addEventListener("click", () => window.location.reload());
  document.addEventListener("keydown", onKeyDown);
  window.addEventListener("pagehide", () => {
    if (state.joined) signalling?.leave();
  });
}

// ---------------------------------------------------------------------------------------
// Rendering everything, the clock, the language switch

function renderAll() {
  renderTiles();
  renderPeople();
  renderChat();
  renderE2ee();
  renderModeration();
}

// ---------------------------------------------------------------------------------------
// Access and moderation (moderation.js renders; the server enforces)

/** Whether the encrypted group adds a person only after a moderator's admission. */
function lobbyWithholds() {
  return Boolean(e2ee) && (state.policy?.lobby ?? "off") !== "off";
}

const moderationActions = {
  confirm: (text) => window.confirm(text),
  moderate: (p, action, extra = {}) =>
    requestOrToast("moderate", { action, participant: p.id, ...extra })?.then((reply) => {
      if (reply && extra.block) loadAccessLists(); // the blocked person is listed now
    }),
  setRole: (p, role) => requestOrToast("set_role", { participant: p.id, role }),
  admit: (person) => admit(person),
  // Someone in the meeting whom the group does not add without a moderator (they skipped
  // the lobby on the server's word, e.g. a link without the invitation key): let them in.
  encryptionAdmit: (person) =>
    e2ee?.admit(person).catch((err) => toast(t("toast.error", { reason: err?.message || String(err) }))),
  deny: (person) => requestOrToast("deny", { participant: person.id }),
  revokeInvitation: (invitation) =>
    requestOrToast("revoke_invitation", { id: invitation.id })?.then((reply) => {
      if (reply) toast(t("accessList.revoked"));
      loadAccessLists();
    }),
  unblock: (block) =>
    requestOrToast("unblock", { id: block.id })?.then((reply) => {
      if (reply) toast(t("accessList.unblocked", { name: block.name || t("accessList.unknownName") }));
      loadAccessLists();
    }),
};

/** Moderators: (re)load the open invitations and blocks for the settings panel. */
function loadAccessLists() {
  if (!signalling || !state.joined || !isModerator(state.self)) return;
  signalling
    .request("list_access", {})
    .then((reply) => {
      if (!isModerator(state.self)) return;
      state.access = reply.access;
      renderModeration();
    })
    .catch((err) => {
      console.warn("incamera: list_access failed", err);
      toast(t("accessList.failed"));
    });
}

function checkInvitations() {
  e2ee?.checkInvitations().catch((err) => console.warn("incamera: invitation check failed", err));
}

function requestOrToast(type, fields) {
  return signalling
    ?.request(type, fields)
    .catch((err) => toast(t("toast.error", { reason: err?.message || String(err) })));
}

/** Lets a waiting person in. With E2EE, first an MLS-authenticated admission to the group:
 * the committer adds a lobby arrival only with one, so the server alone cannot admit. */
async function admit(person) {
  if (e2ee) {
    try {
      await e2ee.admit(person);
    } catch (err) {
      console.warn("incamera: the encrypted admission failed", err);
    }
  }
  await requestOrToast("admit", { participant: person.id });
}

function onLobby(waiting) {
  const before = new Set(state.lobby.map((p) => p.id));
  state.lobby = waiting;
  if (isModerator(state.self)) {
    for (const person of waiting) {
      if (!before.has(person.id)) {
        toast(t("lobby.arrived", { name: person.name }), {
          timeout: 10000,
          onClick: () => {
            if (state.panel !== "people") togglePanel("people");
          },
        });
      }
    }
  }
  renderModeration();
}

function onPolicy(policy) {
  const wasLocked = state.policy?.locked;
  state.policy = policy;
  e2ee?.setPolicy(policy);
  if (state.joined && wasLocked !== undefined && wasLocked !== policy.locked) {
    toast(t(policy.locked ? "mod.locked" : "mod.unlocked"));
  }
  renderModeration();
}

function onModerated(message) {
  const by = participantById(message.by)?.name || "";
  if (message.action === "mute") {
    if (state.micOn) toggleMic();
    toast(t("mod.mutedBy", { by }));
  } else if (message.action === "stop_video") {
    if (state.camOn) toggleCamera();
    toast(t("mod.videoStoppedBy", { by }));
  } else if (message.action === "stop_screen") {
    stopScreenShare();
    toast(t("mod.screenStoppedBy", { by }));
  }
}

function renderModeration() {
  const moderator = isModerator(state.self);
  renderLobby(
    { section: $("lobby-section"), heading: $("lobby-list-heading"), list: $("lobby-list") },
    moderator ? state.lobby : [],
    moderationActions,
  );
  renderModeratorControls(
    {
      bar: $("moderator-bar"),
      form: $("access-form"),
      invite: $("invite-form"),
      lists: $("access-lists"),
      lock: $("btn-lock"),
      lobby: $("access-lobby"),
      membersOnly: $("access-members-only"),
      guests: $("access-guests"),
      pin: $("access-pin"),
    },
    state.policy,
    moderator,
  );
  renderAccessLists(
    { invitations: $("invitation-list"), blocks: $("block-list") },
    moderator ? state.access : null,
    moderationActions,
  );
}

function bindModeration() {
  $("btn-mute-all").addEventListener("click", () => requestOrToast("mute_all", {}));
  $("btn-lock").addEventListener("click", () =>
    requestOrToast("set_policy", { locked: !state.policy?.locked }),
  );
  $("btn-end-all").addEventListener("click", () => {
    if (window.confirm(t("mod.endConfirm"))) requestOrToast("end_meeting", {});
  });
  $("access-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const change = {
      lobby: $("access-lobby").value,
      members_only: $("access-members-only").checked,
      guests_allowed: $("access-guests").checked,
    };
    const pin = $("access-pin").value.trim();
    if (pin) change.pin = pin;
    requestOrToast("set_policy", change)?.then((reply) => {
      if (reply) toast(t("access.saved"));
      $("access-pin").value = "";
    });
  });
  $("invite-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const fields = {
      role: $("invite-role").value,
      expires_in_seconds: Number($("invite-valid").value),
    };
    const name = $("invite-name").value.trim();
    if (name) fields.name = name;
    requestOrToast("invite", fields)?.then(async (reply) => {
      if (!reply?.invitation) return;
      // The token goes in the fragment: it never reaches a server's logs. In an encrypted
      // meeting the link also carries a key for the group (e2ee/invitation.js).
      let link = `${window.location.origin}/m/${meetingId}#invite=${reply.invitation.token}`;
      if (e2ee) {
        const key = newInvitationKey();
        try {
          await e2ee.shareInvitation(key, Date.parse(reply.invitation.expires_at));
          link += `&ik=${key}`;
        } catch (err) {
          console.warn("incamera: the invitation key was not shared", err);
        }
      }
      $("invite-url").value = link;
      $("invite-result").hidden = false;
      $("invite-name").value = "";
      $("invite-url").select();
      loadAccessLists();
    });
  });
  $("invite-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("invite-url").value);
      toast(t("grid.copied"));
    } catch {
      $("invite-url").select();
    }
  });
  $("lobby-leave").addEventListener("click", () => {
    signalling?.fail("left");
    window.location.href = "/";
  });
}

let clockTimer = null;
function startClock() {
  const tick = () => {
    if (!state.joined) {
      $("clock").textContent = "";
      return;
    }
    const seconds = Math.floor((Date.now() - state.joinedAt) / 1000);
    const hh = Math.floor(seconds / 3600);
    const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
    const ss = String(seconds % 60).padStart(2, "0");
    $("clock").textContent = hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
  };
  clockTimer = setInterval(tick, 1000);
}

function setupLanguageSwitch() {
  const select = $("lang-select");
  for (const [code, label] of Object.entries(LANGUAGES)) {
    select.append(h("option", { value: code, text: label }));
  }
  select.value = language();
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange(() => {
    select.value = language();
    updateToolbar();
    if (state.joined) renderAll();
    if (!$("prejoin").hidden) updatePrejoinButtons();
  });
}

// ---------------------------------------------------------------------------------------
// Automation: window.incamera

/** One entry per remote participant, from the receive pc's inbound-rtp stats by mid. */
async function stats() {
  const entries = new Map();
  for (const p of state.participants.values()) {
    entries.set(p.id, {
      id: p.id,
      name: p.name,
      videoFramesDecoded: 0,
      videoWidth: 0,
      videoHeight: 0,
      audioPacketsReceived: 0,
      screenFramesDecoded: 0,
    });
  }
  if (!subscriber?.pc) return Array.from(entries.values());
  const report = await subscriber.stats();
  for (const row of report.values()) {
    if (row.type !== "inbound-rtp" || row.mid == null) continue;
    const info = subscriber.tracks[row.mid];
    const entry = info && entries.get(info.participant);
    if (!entry) continue;
    if (row.kind === "audio") {
      entry.audioPacketsReceived += row.packetsReceived || 0;
    } else if (info.source === "screen") {
      entry.screenFramesDecoded += row.framesDecoded || 0;
    } else {
      entry.videoFramesDecoded += row.framesDecoded || 0;
      entry.videoWidth = row.frameWidth || entry.videoWidth;
      entry.videoHeight = row.frameHeight || entry.videoHeight;
    }
  }
  return Array.from(entries.values());
}

/** The send pc's outbound streams: [{ssrc, kind, mid, rid, mimeType, packetsSent}]. */
async function sendStats() {
  if (!publisher?.pc) return [];
  const report = await publisher.outboundStats();
  const rows = [];
  for (const row of report.values()) {
    if (row.type !== "outbound-rtp") continue;
    rows.push({
      ssrc: row.ssrc,
      kind: row.kind,
      mid: row.mid ?? null,
      rid: row.rid ?? null,
      mimeType: report.get(row.codecId)?.mimeType ?? null,
      packetsSent: row.packetsSent || 0,
      framesEncoded: row.framesEncoded ?? null,
    });
  }
  return rows;
}

function snapshot() {
  return {
    joined: state.joined,
    self: state.self,
    participants: Array.from(state.participants.values()),
    activeSpeaker: state.activeSpeaker,
    chat: Array.from(state.chat.values()).sort((a, b) => a.seq - b.seq),
    signalling: signalling?.state ?? "idle",
    send: publisher?.pc?.iceConnectionState ?? null,
    recv: subscriber?.pc?.iceConnectionState ?? null,
    sendUfrag: iceUfrag(publisher?.pc?.localDescription),
    recvUfrag: iceUfrag(subscriber?.pc?.remoteDescription),
  };
}

function iceUfrag(description) {
  const match = description?.sdp?.match(/^a=ice-ufrag:(\S+)/m);
  return match ? match[1] : null;
}

/** window.incamera.e2ee(): {enabled, epoch, securityCode, members: [{id, name, verified}]}. */
function e2eeStatus() {
  if (e2ee) return e2ee.status();
  return { enabled: state.encrypted === true, epoch: null, securityCode: null, members: [] };
}

window.incamera = {
  stats,
  sendStats,
  e2ee: e2eeStatus,
  /** The SFrame worker's counters (encrypted, decrypted, dropped, failed), or null. */
  frameStats: () => (frameCrypto ? frameCrypto.stats() : Promise.resolve(null)),
  state: snapshot,
  leave,
  /** Drops the WebSocket as a network failure would (for reconnect tests). */
  dropConnection: () => signalling?.dropSocket(),
  /** Restarts ICE on both peer connections, as a lost network would. */
  restartIce: () => {
    publisher?.restartIce();
    subscriber?.restartIce();
  },
};

// ---------------------------------------------------------------------------------------
// Start

async function main() {
  initLanguage(params.get("lang"));
  translatePage();
  setupLanguageSwitch();
  bindControls();
  bindModeration();
  bindDeviceSelects();
  startClock();
  const autoName = (params.get("name") || "").trim();
  const autojoin = params.get("autojoin") === "1" && autoName.length > 0;
  if (autojoin) {
    // Devices, the meeting check and the socket all at once: the join is what people wait for.
    const devices = openBoth(prefs, { wantCamera: state.camOn, wantMic: true });
    checkMeeting().then((problem) => {
      if (problem !== "ok" && !state.joined) {
        checkProblem = problem;
        showCheckProblem(problem);
        signalling?.fail("closed");
        devices.then((d) => [d.camera, d.mic].forEach((track) => track?.stop()));
      }
    });
    await join(autoName, { devices });
    return;
  }
  setupPrejoin();
  const problem = await checkMeeting();
  if (problem !== "ok") {
    showCheckProblem(problem);
    return;
  }
  showScreen("prejoin");
  translatePage();
  await startPreview();
  if (!$("name").value) $("name").focus();
  else $("join").focus();
}

main();
