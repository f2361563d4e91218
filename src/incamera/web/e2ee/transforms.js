// The page's side of end-to-end media encryption: one SFrame worker (transform-worker.js)
// for all transforms of the page, attached to every sender and receiver of both peer
// connections. The keys live in the worker: the page hands it each epoch's SFrame secret
// once and forgets it.
//
// WebRTC Encoded Transform (RTCRtpScriptTransform) where the browser has it (Chromium,
// Firefox, Safari); Chromium's legacy createEncodedStreams() otherwise, which needs
// `encodedInsertableStreams: true` in the peer connection's configuration (`pcConfig()`).

const WORKER_URL = new URL("./transform-worker.js", import.meta.url);

/** Stream contexts of the KID scheme (docs/e2ee.md): which of a sender's streams a key is for. */
export const CONTEXT = { mic: 0, camera: 1, screen: 2, screenAudio: 3 };

export function scriptTransformSupported() {
  return typeof globalThis.RTCRtpScriptTransform === "function";
}

export function legacyTransformSupported() {
  return (
    typeof globalThis.RTCRtpSender === "function" &&
    typeof RTCRtpSender.prototype.createEncodedStreams === "function"
  );
}

export function e2eeSupported() {
  return scriptTransformSupported() || legacyTransformSupported();
}

export class FrameCrypto extends EventTarget {
  constructor() {
    super();
    this.worker = new Worker(WORKER_URL, { type: "module", name: "incamera-sframe" });
    this.legacy = !scriptTransformSupported();
    this.attached = new WeakSet();
    this.pendingStats = [];
    this.epoch = null;
    this.worker.addEventListener("message", (event) => this.onWorkerMessage(event.data));
    this.worker.addEventListener("error", (event) => {
      console.error("incamera: the SFrame worker failed", event.message);
    });
  }

  /** Extra peer connection configuration the legacy path needs. */
  pcConfig() {
    return this.legacy ? { encodedInsertableStreams: true } : {};
  }

  onWorkerMessage(data) {
    if (!data || typeof data !== "object") return;
    if (data.type === "keyframe" && data.mid != null) {
      this.dispatchEvent(new CustomEvent("keyframe", { detail: { mid: String(data.mid) } }));
    } else if (data.type === "stats") {
      const waiting = this.pendingStats;
      this.pendingStats = [];
      for (const resolve of waiting) resolve(data);
    }
  }

  /**
   * Encrypts everything `sender` sends (`kind` audio|video, `context` from CONTEXT).
   * Without a key the worker drops frames: nothing leaves in clear.
   */
  attachSender(sender, { kind, context, mid = null }) {
    if (!sender || this.attached.has(sender)) return;
    this.attached.add(sender);
    this.attach(sender, { role: "send", kind, context, mid });
  }

  /** Decrypts what `receiver` gets; frames that do not authenticate are dropped. */
  attachReceiver(receiver, { kind, mid }) {
    if (!receiver || this.attached.has(receiver)) return;
    this.attached.add(receiver);
    this.attach(receiver, { role: "recv", kind, context: null, mid });
  }

  attach(endpoint, options) {
    if (!this.legacy) {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = endpoint.createEncodedStreams();
    this.worker.postMessage({ type: "stream", readable, writable, options }, [readable, writable]);
  }

  /**
   * Installs an MLS epoch's SFrame secret (32 bytes from the MLS exporter). The bytes are
   * handed to the worker and wiped here; older epochs stay usable in the worker for a few
   * seconds, for frames in flight.
   */
  installEpoch(epoch, secret, leaf) {
    const copy = new Uint8Array(secret);
    this.worker.postMessage({ type: "epoch", epoch, secret: copy, leaf }, [copy.buffer]);
    secret.fill(0);
    this.epoch = epoch;
  }

  /** Forgets every key (leaving, or removed from the group). */
  reset() {
    this.worker.postMessage({ type: "reset" });
    this.epoch = null;
  }

  /** The worker's counters (encrypted, decrypted, dropped without key, failed). */
  stats() {
    return new Promise((resolve) => {
      this.pendingStats.push(resolve);
      this.worker.postMessage({ type: "stats" });
      setTimeout(() => {
        const index = this.pendingStats.indexOf(resolve);
        if (index >= 0) {
          this.pendingStats.splice(index, 1);
          resolve(null);
        }
      }, 2000);
    });
  }

  close() {
    this.reset();
    this.worker.terminate();
  }
}
