// Local devices: opening the camera and microphone, listing devices, remembering choices.

import { CAMERA_CONSTRAINTS } from "./media.js";

const PREFS_KEY = "incamera.devices";

export function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY)) || {};
  } catch {
    return {};
  }
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // private mode: not remembered
  }
}

function withDevice(base, deviceId) {
  return deviceId ? { ...base, deviceId: { ideal: deviceId } } : base;
}

/** Opens the camera (1280x720 asked for); resolves with a track or throws. */
export async function openCamera(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: withDevice(CAMERA_CONSTRAINTS, deviceId),
    audio: false,
  });
  return stream.getVideoTracks()[0];
}

/** Opens the microphone with echo cancellation and noise suppression. */
export async function openMicrophone(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: withDevice({ echoCancellation: true, noiseSuppression: true, autoGainControl: true }, deviceId),
    video: false,
  });
  return stream.getAudioTracks()[0];
}

/** Camera and microphone together where possible (one permission prompt). Never throws:
 *  `{camera, mic, cameraError, micError}`. */
export async function openBoth(prefs, { wantCamera = true, wantMic = true } = {}) {
  const result = { camera: null, mic: null, cameraError: null, micError: null };
  if (!navigator.mediaDevices?.getUserMedia) {
    const err = new Error("getUserMedia is not available (a secure context is required)");
    return { ...result, cameraError: err, micError: err };
  }
  if (wantCamera && wantMic) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: withDevice(CAMERA_CONSTRAINTS, prefs.camera),
        audio: withDevice({ echoCancellation: true, noiseSuppression: true }, prefs.mic),
      });
      result.camera = stream.getVideoTracks()[0] || null;
      result.mic = stream.getAudioTracks()[0] || null;
      return result;
    } catch {
      // fall through: try each on its own, so one missing device does not cost the other
    }
  }
  if (wantCamera) {
    try {
      result.camera = await openCamera(prefs.camera);
    } catch (err) {
      result.cameraError = err;
    }
  }
  if (wantMic) {
    try {
      result.mic = await openMicrophone(prefs.mic);
    } catch (err) {
      result.micError = err;
    }
  }
  return result;
}

/** `{cameras, mics, speakers}` (labels are empty before a permission was granted). */
export async function listDevices() {
  const out = { cameras: [], mics: [], speakers: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return out;
  for (const device of await navigator.mediaDevices.enumerateDevices()) {
    if (device.kind === "videoinput") out.cameras.push(device);
    else if (device.kind === "audioinput") out.mics.push(device);
    else if (device.kind === "audiooutput") out.speakers.push(device);
  }
  return out;
}

export const canChooseSpeaker = () =>
  typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

/** Fills a <select> with devices, keeping `selected` when it is present. */
export function fillSelect(select, devices, selected, fallbackLabel) {
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${fallbackLabel} ${index + 1}`;
    select.append(option);
  });
  if (devices.some((d) => d.deviceId === selected)) select.value = selected;
  select.disabled = devices.length === 0;
}

export function errorReason(err) {
  if (!err) return "";
  if (err.name === "NotAllowedError") return "permission";
  return err.message || err.name || String(err);
}
