// The two peer connections of a participant (docs/architecture.md):
//   Publisher  - the SEND pc: this page offers its mic, camera (three simulcast layers) and
//                screen; `publish` carries the offer and a map mid -> source.
//   Subscriber - the RECV pc: the server offers (`subscribe`), this page answers; the
//                `tracks` map says which participant and source each mid carries.
// With end-to-end encryption (`frameCrypto`, e2ee/transforms.js) every sender and receiver
// gets an SFrame transform, and video is VP8 (or VP9): codecs whose packetizer does not
// read the (encrypted) frame.
// Both watch their ICE state and restart ICE when connectivity is lost. No ICE servers:
// the SFU is ICE-lite and lists its own candidates; nothing public is ever contacted.

/**
 * A User Timing mark (`incamera:<name>`) of the first time a step of joining happens in this
 * page; `incamera bench join` reports them. Marks carry a name and a time, nothing else.
 */
export function markStep(name) {
  const mark = `incamera:${name}`;
  if (globalThis.performance?.mark && performance.getEntriesByName(mark).length === 0) {
    performance.mark(mark);
  }
}

export const PC_CONFIG = { iceServers: [], bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };

export const CAMERA_CONSTRAINTS = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30, max: 30 },
};

// rids q/h/f: quarter, half and full resolution (the names the SFU maps to scales).
export const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

// E2EE: VP8 first, VP9 second; H264 and AV1 packetizers parse the frame, which is ciphertext.
const E2EE_VIDEO_CODECS = ["video/VP8", "video/VP9", "video/rtx"];

/** Restricts a video transceiver to the codecs that work with encrypted frames. */
function preferE2eeCodecs(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function") return;
  const capabilities = RTCRtpReceiver.getCapabilities?.("video") ?? RTCRtpSender.getCapabilities?.("video");
  if (!capabilities) return;
  const rank = (codec) => E2EE_VIDEO_CODECS.indexOf(codec.mimeType);
  const codecs = capabilities.codecs.filter((c) => rank(c) >= 0).sort((a, b) => rank(a) - rank(b));
  if (codecs.some((c) => c.mimeType === "video/VP8")) transceiver.setCodecPreferences(codecs);
}

const DISCONNECTED_GRACE_MS = 2500; // "disconnected" this long before an ICE restart

/** Watches a pc's ICE state; calls `restart()` on failure or a lasting disconnection. */
class IceWatch {
  constructor(pc, restart, onChange) {
    this.timer = null;
    this.pc = pc;
    pc.addEventListener("iceconnectionstatechange", () => {
      const state = pc.iceConnectionState;
      onChange(state);
      clearTimeout(this.timer);
      if (state === "failed") {
        restart();
      } else if (state === "disconnected") {
        this.timer = setTimeout(() => {
          if (pc.iceConnectionState === "disconnected") restart();
        }, DISCONNECTED_GRACE_MS);
      }
    });
  }

  stop() {
    clearTimeout(this.timer);
  }
}

/** Runs async jobs one after the other (negotiations must not overlap). */
class Serial {
  constructor() {
    this.tail = Promise.resolve();
  }

  run(job) {
    const result = this.tail.then(job);
    this.tail = result.catch(() => {});
    return result;
  }
}

export class Publisher extends EventTarget {
  constructor(signalling, { frameCrypto = null } = {}) {
    super();
    this.signalling = signalling;
    this.frameCrypto = frameCrypto;
    this.pc = null;
    this.transceivers = { mic: null, camera: null, screen: null };
    this.serial = new Serial();
    this.needsRestart = false;
    this.watch = null;
    this.closed = false;
  }

  get connected() {
    return this.pc !== null && ["connected", "completed"].includes(this.pc.iceConnectionState);
  }

  /** Creates the pc with a mic and a camera transceiver (a track may be null) and publishes. */
  async start(micTrack, cameraTrack, stream) {
    this.pc = new RTCPeerConnection({ ...PC_CONFIG, ...this.frameCrypto?.pcConfig() });
    this.watch = new IceWatch(
      this.pc,
      () => this.restartIce(),
      (state) => this.emit("ice", state),
    );
    const streams = stream ? [stream] : [];
    this.transceivers.mic = this.pc.addTransceiver(micTrack || "audio", {
      direction: "sendonly",
      streams,
    });
    if (cameraTrack) cameraTrack.contentHint = "motion";
    this.transceivers.camera = this.pc.addTransceiver(cameraTrack || "video", {
      direction: "sendonly",
      streams,
      sendEncodings: SIMULCAST_ENCODINGS.map((e) => ({ ...e })),
    });
    this.encrypt("mic", this.transceivers.mic);
    this.encrypt("camera", this.transceivers.camera);
    await this.publish();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** E2EE: an SFrame transform on the sender, and codecs that survive encrypted frames. */
  encrypt(source, transceiver) {
    if (!this.frameCrypto) return;
    const kind = source === "mic" ? "audio" : "video";
    if (kind === "video") preferE2eeCodecs(transceiver);
    const context = { mic: 0, camera: 1, screen: 2 }[source];
    this.frameCrypto.attachSender(transceiver.sender, { kind, context });
  }

  sources() {
    const map = {};
    for (const [source, transceiver] of Object.entries(this.transceivers)) {
      if (transceiver && transceiver.mid !== null && !transceiver.stopped) {
        map[transceiver.mid] = source;
      }
    }
    return map;
  }

  /** (Re)negotiates: a full offer with the current transceivers. */
  publish({ iceRestart = false } = {}) {
    return this.serial.run(async () => {
      if (this.closed) return;
      const offer = await this.pc.createOffer({ iceRestart });
      await this.pc.setLocalDescription(offer);
      const reply = await this.signalling.request("publish", {
        sdp: this.pc.localDescription.sdp,
        sources: this.sources(),
      });
      if (this.closed) return;
      await this.pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    });
  }

  /** Publishes again after a failure (e.g. the socket dropped mid-request). */
  async recover() {
    if (this.closed || !this.pc) return;
    const restart = this.needsRestart || !this.connected;
    this.needsRestart = false;
    let unfinished = false;
    await this.serial.run(async () => {
      if (this.pc.signalingState === "have-local-offer") {
        await this.pc.setLocalDescription({ type: "rollback" });
        unfinished = true;
      }
    });
    if (restart || unfinished) {
      await this.publish({ iceRestart: restart });
    }
  }

  restartIce() {
    if (this.closed) return;
    if (!this.signalling.isOpen) {
      this.needsRestart = true; // done by recover() once the socket is back
      return;
    }
    this.publish({ iceRestart: true }).catch((err) => {
      console.warn("incamera: ICE restart of the send connection failed:", err);
      this.needsRestart = true;
    });
  }

  /** Swaps the track of `source` without renegotiation (null sends nothing). */
  async replaceTrack(source, track) {
    const transceiver = this.transceivers[source];
    if (!transceiver) return;
    if (track && source === "camera") track.contentHint = "motion";
    await transceiver.sender.replaceTrack(track);
  }

  /** Starts sending a screen share (adds or reuses the screen transceiver and publishes). */
  async startScreen(track) {
    track.contentHint = "detail";
    let transceiver = this.transceivers.screen;
    if (transceiver && !transceiver.stopped) {
      transceiver.direction = "sendonly";
      await transceiver.sender.replaceTrack(track);
    } else {
      transceiver = this.pc.addTransceiver(track, { direction: "sendonly" });
      this.transceivers.screen = transceiver;
      this.encrypt("screen", transceiver);
    }
    await this.publish();
  }

  async stopScreen() {
    const transceiver = this.transceivers.screen;
    if (!transceiver || transceiver.stopped) return;
    transceiver.direction = "inactive";
    await transceiver.sender.replaceTrack(null);
    await this.publish();
  }

  async outboundStats() {
    return this.pc ? this.pc.getStats() : new Map();
  }

  close() {
    this.closed = true;
    this.watch?.stop();
    this.pc?.close();
  }
}

/**
 * The receive side. `bindings` maps mid -> {participant, source, track, kind}; a "tracks"
 * event (detail: the bindings) fires whenever it changes.
 */
export class Subscriber extends EventTarget {
  constructor(signalling, { frameCrypto = null } = {}) {
    super();
    this.signalling = signalling;
    this.frameCrypto = frameCrypto;
    this.pc = null;
    this.tracks = {};
    this.bindings = new Map();
    this.serial = new Serial();
    this.needsRestart = false;
    this.undelivered = false;
    this.watch = null;
    this.closed = false;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  get connected() {
    return this.pc !== null && ["connected", "completed"].includes(this.pc.iceConnectionState);
  }

  ensurePc() {
    if (this.pc === null) {
      this.pc = new RTCPeerConnection({ ...PC_CONFIG, ...this.frameCrypto?.pcConfig() });
      this.watch = new IceWatch(
        this.pc,
        () => this.restartIce(),
        (state) => this.emit("ice", state),
      );
    }
    return this.pc;
  }

  /**
   * Creates the peer connection before the first offer, so that the browser's WebRTC set-up
   * and the DTLS certificate overlap the signalling connect instead of delaying the answer.
   * Not with the legacy transform path: its configuration waits for the welcome's E2EE flag.
   */
  prepare() {
    if (this.closed || this.frameCrypto?.legacy) return;
    this.ensurePc();
  }

  /** Handles a server `subscribe` offer: answer it and rebind mids to participants. */
  onOffer(message) {
    return this.serial.run(async () => {
      if (this.closed) return;
      const pc = this.ensurePc();
      await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
      this.tracks = message.tracks || {};
      if (this.frameCrypto) {
        for (const transceiver of pc.getTransceivers()) {
          if (transceiver.mid === null || transceiver.stopped) continue;
          const receiver = transceiver.receiver;
          this.frameCrypto.attachReceiver(receiver, { kind: receiver.track.kind, mid: transceiver.mid });
        }
      }
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      // Not sent while the socket is down: recover() delivers it after the reconnect.
      this.undelivered = !this.signalling.send("subscribe_answer", {
        sdp: pc.localDescription.sdp,
      });
      markStep("subscribe_answer");
      this.rebind();
    });
  }

  rebind() {
    const bindings = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      const mid = transceiver.mid;
      const info = mid !== null ? this.tracks[mid] : undefined;
      if (!info || transceiver.stopped || transceiver.currentDirection === "inactive") continue;
      const track = transceiver.receiver.track;
      bindings.set(mid, {
        mid,
        participant: info.participant,
        source: info.source,
        kind: track.kind,
        track,
      });
    }
    this.bindings = bindings;
    this.emit("tracks", bindings);
  }

  /** The mid carrying `source` of `participantId`, or null. */
  midOf(participantId, source) {
    for (const binding of this.bindings.values()) {
      if (binding.participant === participantId && binding.source === source) {
        return binding.mid;
      }
    }
    return null;
  }

  restartIce() {
    if (this.closed) return;
    if (!this.signalling.isOpen) {
      this.needsRestart = true;
      return;
    }
    this.signalling.request("restart_ice").catch((err) => {
      console.warn("incamera: ICE restart of the receive connection failed:", err);
      this.needsRestart = true;
    });
  }

  /** After the socket came back: restart ICE if it was lost meanwhile. */
  recover() {
    if (this.closed || this.pc === null) return;
    if (this.undelivered && this.pc.signalingState === "stable") {
      this.undelivered = !this.signalling.send("subscribe_answer", {
        sdp: this.pc.localDescription.sdp,
      });
    }
    if (this.needsRestart || !this.connected) {
      this.needsRestart = false;
      this.restartIce();
    }
  }

  async stats() {
    return this.pc ? this.pc.getStats() : new Map();
  }

  close() {
    this.closed = true;
    this.watch?.stop();
    this.pc?.close();
  }
}
