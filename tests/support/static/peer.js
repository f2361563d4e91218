// Test peer for incamera's media tests, driven from Python through Playwright.
//
// Two peer connections per participant, as the SFU uses them:
//   send pc: this page offers (sendonly audio/video), the server answers;
//   recv pc: the server offers (and re-offers), this page answers.
// No ICE servers: the SFU is ICE-lite and lists its candidates in its SDP.
// Signalling is non-trickle: an SDP is handed out only once gathering completed.

const PC_CONFIG = { iceServers: [] };

let sendPc = null;
let recvPc = null;
const localStreams = [];
const remoteElements = new Map(); // track id -> <video>/<audio>

function waitForGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function preferCodec(transceiver, kind, mimeType) {
  if (!mimeType) {
    return;
  }
  const caps = RTCRtpReceiver.getCapabilities(kind);
  const wanted = mimeType.toLowerCase();
  const preferred = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (preferred.length === 0) {
    throw new Error(`codec ${mimeType} not supported`);
  }
  const helpers = caps.codecs.filter((c) =>
    ["video/rtx", "video/red", "video/ulpfec", "audio/red"].includes(c.mimeType.toLowerCase()),
  );
  transceiver.setCodecPreferences([...preferred, ...helpers]);
}

async function getMedia(opts) {
  const stream = new MediaStream();
  if (opts.video) {
    const constraints = {
      width: { exact: opts.width },
      height: { exact: opts.height },
    };
    const source =
      opts.source === "screen"
        ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })
        : await navigator.mediaDevices.getUserMedia({ video: constraints, audio: false });
    for (const t of source.getVideoTracks()) {
      stream.addTrack(t);
    }
  }
  if (opts.audio) {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    for (const t of mic.getAudioTracks()) {
      stream.addTrack(t);
    }
  }
  return stream;
}

// Adds sendonly transceivers for the requested media to the send pc (created on first use)
// and returns the offer SDP. Calling it again adds more tracks (e.g. a screen share) and
// renegotiates.
async function createPublishOffer(opts) {
  const stream = await getMedia(opts);
  localStreams.push(stream);
  if (sendPc === null) {
    sendPc = new RTCPeerConnection(PC_CONFIG);
  }
  for (const track of stream.getAudioTracks()) {
    sendPc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  }
  for (const track of stream.getVideoTracks()) {
    if (opts.maintainResolution) {
      // Makes Chromium's encoder drop frames instead of scaling down when CPU or bandwidth
      // run short, so tests on a loaded machine still see the resolutions they asked for.
      track.contentHint = "detail";
    }
    const init = { direction: "sendonly", streams: [stream] };
    if (opts.simulcast) {
      init.sendEncodings = [
        { rid: "q", scaleResolutionDownBy: 4 },
        { rid: "h", scaleResolutionDownBy: 2 },
        { rid: "f" },
      ];
    }
    const transceiver = sendPc.addTransceiver(track, init);
    preferCodec(transceiver, "video", opts.videoCodec);
  }
  if (opts.video) {
    const video = document.createElement("video");
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    document.getElementById("local").appendChild(video);
  }
  await sendPc.setLocalDescription(await sendPc.createOffer());
  await waitForGatheringComplete(sendPc);
  return sendPc.localDescription.sdp;
}

async function applyPublishAnswer(sdp) {
  await sendPc.setRemoteDescription({ type: "answer", sdp });
}

function attachRemoteTrack(track) {
  const el = document.createElement(track.kind === "video" ? "video" : "audio");
  el.autoplay = true;
  el.muted = true;
  el.playsInline = true;
  el.dataset.trackId = track.id;
  el.srcObject = new MediaStream([track]);
  document.getElementById("remote").appendChild(el);
  remoteElements.set(track.id, el);
  const detach = () => {
    el.remove();
    remoteElements.delete(track.id);
  };
  track.addEventListener("ended", detach);
}

function ensureRecvPc() {
  if (recvPc === null) {
    recvPc = new RTCPeerConnection(PC_CONFIG);
    recvPc.addEventListener("track", (ev) => attachRemoteTrack(ev.track));
  }
  return recvPc;
}

// Applies a server offer to the recv pc and returns the answer SDP. Repeatable.
async function answerOffer(sdp) {
  const pc = ensureRecvPc();
  await pc.setRemoteDescription({ type: "offer", sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await waitForGatheringComplete(pc);
  return pc.localDescription.sdp;
}

function pick(report, names) {
  const out = {};
  for (const name of names) {
    if (report[name] !== undefined) {
      out[name] = report[name];
    }
  }
  return out;
}

const INBOUND_FIELDS = [
  "kind", "mid", "ssrc", "trackIdentifier", "framesDecoded", "framesReceived",
  "framesDropped", "keyFramesDecoded", "frameWidth", "frameHeight", "packetsReceived",
  "packetsLost", "bytesReceived", "nackCount", "pliCount", "firCount",
  "retransmittedPacketsReceived", "retransmittedBytesReceived", "jitter",
  "totalSamplesReceived", "concealedSamples", "decoderImplementation",
];

const OUTBOUND_FIELDS = [
  "kind", "mid", "ssrc", "rid", "active", "bytesSent", "packetsSent", "framesEncoded",
  "keyFramesEncoded", "frameWidth", "frameHeight", "framesPerSecond",
  "retransmittedPacketsSent", "retransmittedBytesSent", "nackCount", "pliCount", "firCount",
  "qualityLimitationReason", "scalabilityMode", "encoderImplementation", "targetBitrate",
];

async function rtpStats(pc, type, fields) {
  if (pc === null) {
    return [];
  }
  const report = await pc.getStats();
  const rows = [];
  for (const entry of report.values()) {
    if (entry.type !== type) {
      continue;
    }
    const row = pick(entry, fields);
    const codec = entry.codecId ? report.get(entry.codecId) : undefined;
    if (codec) {
      row.mimeType = codec.mimeType;
    }
    rows.push(row);
  }
  return rows;
}

async function stats() {
  return {
    inbound: await rtpStats(recvPc, "inbound-rtp", INBOUND_FIELDS),
    outbound: await rtpStats(sendPc, "outbound-rtp", OUTBOUND_FIELDS),
  };
}

function pcState(pc) {
  if (pc === null) {
    return null;
  }
  return {
    connectionState: pc.connectionState,
    iceConnectionState: pc.iceConnectionState,
    signalingState: pc.signalingState,
  };
}

function connectionStates() {
  return { send: pcState(sendPc), recv: pcState(recvPc) };
}

function close() {
  for (const pc of [sendPc, recvPc]) {
    if (pc !== null) {
      pc.close();
    }
  }
  for (const stream of localStreams) {
    for (const t of stream.getTracks()) {
      t.stop();
    }
  }
}

window.incamera = {
  createPublishOffer,
  applyPublishAnswer,
  answerOffer,
  stats,
  connectionStates,
  remoteElementCount: () => remoteElements.size,
  close,
};
window.incameraReady = true;
