// The encoded-transform logic of the E2EE worker, free of worker globals so Node can test it.
//
// KeyRing: the MLS epochs this page holds (one SFrame base key each, RFC 9605 §5.2), with send
// counters. FrameTransform: one RTCRtpSender/Receiver's frames (encrypt or decrypt, drop and
// count what cannot be). TransformHub: the worker's state, its control messages and the
// stream plumbing; transform-worker.js only connects it to the worker's events.
//
// Rules (docs: the E2EE design):
//  - A sender with no key drops the frame: clear media is never sent.
//  - KID = context << 20 | own leaf << 4 | (epoch mod 16); one counter per KID, only ever
//    moving forward, kept even across 'reset' so that no (key, nonce) pair is used twice.
//  - A receiver picks the key by the KID's epoch bits among the epochs it holds; an epoch
//    replaced by a newer one stays usable for EPOCH_RETAIN_MS, then is forgotten. A newer
//    epoch with the same low four bits replaces the old one at once (RFC 9605 §5.2).
//  - A receiver that dropped frames for want of a key asks for a key frame once that key
//    arrives (the page forwards {type:'keyframe', mid} to the SFU), and asks again every
//    KEY_FRAME_RETRY_MS while it decrypts only delta frames (the SFU passes one request per
//    300 ms upstream, so the first may have been absorbed by an earlier one whose key frame
//    came before the key), for at most KEY_FRAME_RETRY_FOR_MS.

import {
  DEFAULT_SUITE,
  UnknownKidError,
  bytesOf,
  codecKey,
  deriveSFrameKey,
  importBaseKey,
  mlsKid,
  openFrame,
  sealFrame,
  splitMlsKid,
  suiteParams,
} from './sframe.js';

export const EPOCH_RETAIN_MS = 10_000;
export const KEY_FRAME_RETRY_MS = 100;
export const KEY_FRAME_RETRY_FOR_MS = 3_000;
const MAX_CACHED_KEYS = 4096; // per epoch; a flood of made-up KIDs only costs re-derivation

function isCryptoKey(value) {
  return value !== null && typeof value === 'object' && 'algorithm' in value && 'usages' in value && 'type' in value;
}

async function baseKeyFrom(secret) {
  if (isCryptoKey(secret)) {
    if (secret.algorithm?.name !== 'HKDF') throw new TypeError('the epoch secret must be an HKDF CryptoKey or bytes');
    return secret;
  }
  const bytes = bytesOf(secret);
  if (bytes.length < 16 || bytes.length > 64) throw new RangeError('the epoch secret must be 16 to 64 bytes');
  return importBaseKey(bytes);
}

export class KeyRing {
  #epochs = new Map(); // epoch mod 16 -> {epoch, leaf, baseKey, expiresAt, keys: Map<kid, Promise<SFrameKey>>}
  #current = null;
  #counters = new Map(); // kid (BigInt) -> next CTR (BigInt); survives reset()
  #listeners = new Set();
  #queue = Promise.resolve();

  constructor({ suite = DEFAULT_SUITE, retainMs = EPOCH_RETAIN_MS, now = () => performance.now() } = {}) {
    suiteParams(suite);
    this.suite = suite;
    this.retainMs = retainMs;
    this.now = now;
  }

  get tagLength() {
    return suiteParams(this.suite).nt;
  }

  get currentEpoch() {
    return this.#current ? this.#current.epoch : null;
  }

  get ownLeaf() {
    return this.#current ? this.#current.leaf : null;
  }

  /** The epochs held now (current and not yet expired), ascending. */
  heldEpochs() {
    this.#prune();
    return [...this.#epochs.values()].map((entry) => entry.epoch).sort((a, b) => a - b);
  }

  /** Call `listener(epochBits, epoch)` after each installed epoch; returns an unsubscribe. */
  onInstall(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Install an epoch's SFrame base key (bytes, or a non-extractable HKDF CryptoKey) with our
   * own leaf index in it. Installs run one after the other, in call order.
   */
  installEpoch(epoch, secret, leaf) {
    const run = this.#queue.then(() => this.#install(epoch, secret, leaf));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #install(epoch, secret, leaf) {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`bad epoch ${epoch}`);
    if (!Number.isInteger(leaf) || leaf < 0 || leaf > 0xffff) throw new RangeError(`bad leaf index ${leaf}`);
    const baseKey = await baseKeyFrom(secret);
    const bits = epoch & 0xf;
    const now = this.now();
    const entry = { epoch, leaf, baseKey, expiresAt: null, keys: new Map() };
    const current = this.#current;
    if (current && epoch < current.epoch) {
      // A late, older epoch: for receiving only, and it expires like a replaced one.
      const held = this.#epochs.get(bits);
      if (held && held.epoch > epoch) return;
      entry.expiresAt = now + this.retainMs;
    } else {
      for (const other of this.#epochs.values()) {
        if (other.expiresAt === null) other.expiresAt = now + this.retainMs;
      }
      this.#current = entry;
    }
    this.#epochs.set(bits, entry); // replaces any epoch with the same low bits
    this.#prune(now);
    for (const listener of this.#listeners) listener(bits, epoch);
  }

  /** Forget every epoch and key (counters stay: see the file comment). */
  reset() {
    this.#epochs.clear();
    this.#current = null;
  }

  #prune(now = this.now()) {
    for (const [bits, entry] of this.#epochs) {
      if (entry.expiresAt !== null && now >= entry.expiresAt) this.#epochs.delete(bits);
    }
  }

  #keyFor(entry, kid) {
    let key = entry.keys.get(kid);
    if (!key) {
      if (entry.keys.size >= MAX_CACHED_KEYS) entry.keys.clear();
      key = deriveSFrameKey(this.suite, entry.baseKey, kid);
      entry.keys.set(kid, key);
      key.catch(() => entry.keys.delete(kid));
    }
    return key;
  }

  /** Our KID for a stream context in the current epoch, or null without a key. */
  sendKid(context) {
    const current = this.#current;
    return current ? mlsKid(context, current.leaf, current.epoch) : null;
  }

  /** The current epoch's send key for `kid` (a promise), or null. */
  sendKey(kid) {
    const current = this.#current;
    if (!current || splitMlsKid(kid).epochBits !== (current.epoch & 0xf)) return null;
    return this.#keyFor(current, kid);
  }

  /** The next counter of `kid`, taken (never handed out twice). */
  takeCounter(kid) {
    const next = this.#counters.get(kid) ?? 0n;
    this.#counters.set(kid, next + 1n);
    return next;
  }

  /** The receive key for `kid` (a promise) from the epoch its low bits name, or null. */
  receiveKey(kid) {
    this.#prune();
    const entry = this.#epochs.get(splitMlsKid(kid).epochBits);
    return entry ? this.#keyFor(entry, kid) : null;
  }
}

const ROLES = new Set(['send', 'recv']);
const KINDS = new Set(['audio', 'video']);

/** One RTCRtpSender's or RTCRtpReceiver's frames through SFrame. */
export class FrameTransform {
  #hadNoKey = false;
  #keyFrameAskedAt = null; // a receiver's last request while it waits for a key frame
  #keyFrameWaitSince = null;
  #unsubscribe;

  /**
   * options: {role: 'send'|'recv', kind: 'audio'|'video', context: 0..3 (null for recv), mid?: string,
   * payloadTypes?: {pt: mimeType}} (payloadTypes only for browsers whose frame metadata has
   * no mimeType). hooks: onKeyFrameNeeded(mid) when a missing receive key arrived;
   * requestKeyFrame() asks the local encoder (send) or the remote sender (recv) directly.
   */
  constructor(ring, options, { onKeyFrameNeeded = () => {}, requestKeyFrame = null } = {}) {
    const { role, kind, context, mid = null, payloadTypes = null } = options ?? {};
    if (!ROLES.has(role)) throw new TypeError(`bad role ${role}`);
    if (!KINDS.has(kind)) throw new TypeError(`bad kind ${kind}`);
    // A receiver learns the context from each frame's KID; a sender must name its own.
    const validContext = Number.isInteger(context) && context >= 0 && context <= 3;
    if (!validContext && (role === 'send' || (context !== null && context !== undefined))) {
      throw new TypeError(`bad context ${context}`);
    }
    Object.assign(this, { ring, role, kind, context: validContext ? context : null, mid, payloadTypes });
    this.onKeyFrameNeeded = onKeyFrameNeeded;
    this.requestKeyFrame = requestKeyFrame;
    this.stats = { encrypted: 0, decrypted: 0, dropped_no_key: 0, failed_auth: 0, dropped_codec: 0, errors: 0 };
    this.missingEpochs = new Set();
    this.#unsubscribe = ring.onInstall((bits) => this.#installed(bits));
  }

  #installed(bits) {
    if (this.role !== 'recv' || !this.missingEpochs.delete(bits)) return;
    if (this.kind === 'video') this.#keyFrameWaitSince = this.ring.now();
    this.#askForKeyFrame();
  }

  #askForKeyFrame() {
    this.#keyFrameAskedAt = this.ring.now();
    this.onKeyFrameNeeded(this.mid);
    this.requestKeyFrame?.();
  }

  /** After a decrypted video frame: stop waiting at a key frame, else maybe ask again. */
  #decryptedVideo(frame) {
    if (this.#keyFrameWaitSince === null) return;
    const now = this.ring.now();
    if (frame.type === 'key' || now - this.#keyFrameWaitSince >= KEY_FRAME_RETRY_FOR_MS) {
      this.#keyFrameWaitSince = this.#keyFrameAskedAt = null;
    } else if (now - this.#keyFrameAskedAt >= KEY_FRAME_RETRY_MS) {
      this.#askForKeyFrame();
    }
  }

  /** The frame's codec: metadata mimeType, else the payload type map, else by kind. */
  codecOf(frame) {
    const metadata = typeof frame.getMetadata === 'function' ? frame.getMetadata() : {};
    if (metadata?.mimeType) return metadata.mimeType;
    const mapped = this.payloadTypes?.[metadata?.payloadType];
    if (mapped) return mapped;
    return this.kind === 'audio' ? 'audio/opus' : 'video/VP8';
  }

  /** Transform `frame` in place: true to pass it on, false to drop it. Never throws. */
  async process(frame) {
    let codec;
    try {
      codec = codecKey(this.codecOf(frame));
    } catch {
      this.stats.dropped_codec++;
      return false;
    }
    try {
      return this.role === 'send' ? await this.#send(frame, codec) : await this.#receive(frame, codec);
    } catch {
      this.stats.errors++;
      return false;
    }
  }

  async #send(frame, codec) {
    const kid = this.ring.sendKid(this.context);
    const keyPromise = kid === null ? null : this.ring.sendKey(kid);
    if (keyPromise === null) {
      this.stats.dropped_no_key++;
      this.#hadNoKey = true;
      return false;
    }
    const ctr = this.ring.takeCounter(kid);
    const sealed = await sealFrame(await keyPromise, ctr, codec, frame.data);
    frame.data = sealed.buffer;
    this.stats.encrypted++;
    if (this.#hadNoKey) {
      // Receivers saw nothing decodable while we had no key: start them with a key frame.
      this.#hadNoKey = false;
      if (this.kind === 'video') this.requestKeyFrame?.();
    }
    return true;
  }

  async #receive(frame, codec) {
    // Chromium hands receivers an empty audio frame now and then (no RTP payload): nothing
    // to decrypt and nothing to leak, so it passes as it is.
    if (frame.data.byteLength === 0) return true;
    try {
      const plain = await openFrame((kid) => this.ring.receiveKey(kid), codec, frame.data, this.ring.tagLength);
      frame.data = plain.buffer;
      this.stats.decrypted++;
      if (this.kind === 'video') this.#decryptedVideo(frame);
      return true;
    } catch (error) {
      if (error instanceof UnknownKidError) {
        this.stats.dropped_no_key++;
        this.missingEpochs.add(splitMlsKid(error.kid).epochBits);
      } else {
        this.stats.failed_auth++;
      }
      return false;
    }
  }

  snapshot() {
    const { role, kind, context, mid } = this;
    return { role, kind, context, mid, ...this.stats };
  }

  close() {
    this.#unsubscribe();
  }
}

/** Pipe encoded frames from `readable` through `transform` to `writable`. */
export function runTransform(readable, writable, transform) {
  const stream = new TransformStream({
    async transform(frame, controller) {
      if (await transform.process(frame)) controller.enqueue(frame);
    },
  });
  return readable
    .pipeThrough(stream)
    .pipeTo(writable)
    .finally(() => transform.close());
}

function keyFrameRequester(transformer, role) {
  if (!transformer) return null;
  return () => {
    try {
      const pending = role === 'send' ? transformer.generateKeyFrame?.() : transformer.sendKeyFrameRequest?.();
      pending?.catch?.(() => {});
    } catch {
      // not supported by this browser: the page's {type:'keyframe'} path remains
    }
  };
}

/**
 * The worker's state: one KeyRing for all transforms of a page. `post(message)` sends to
 * the page. Messages in: {type:'epoch', epoch, secret, leaf}, {type:'reset'},
 * {type:'stats', id?}, {type:'stream', readable, writable, options}.
 * Messages out: {type:'keyframe', mid}, {type:'stats', id, epoch, transforms},
 * {type:'error', message}.
 */
export class TransformHub {
  constructor({ post, ring = new KeyRing() }) {
    this.post = post;
    this.ring = ring;
    this.transforms = new Set();
  }

  /** Start a transform; resolves when its streams end. */
  attach(readable, writable, options, transformer = null) {
    let transform;
    try {
      transform = new FrameTransform(this.ring, options, {
        onKeyFrameNeeded: (mid) => this.post({ type: 'keyframe', mid }),
        requestKeyFrame: keyFrameRequester(transformer, options?.role),
      });
    } catch (error) {
      this.post({ type: 'error', message: `transform not started: ${error.message}` });
      // Without a valid transform nothing may pass: close the writable side, leave it empty.
      return readable.cancel().then(() => writable.abort?.());
    }
    this.transforms.add(transform);
    return runTransform(readable, writable, transform)
      .catch(() => {})
      .finally(() => this.transforms.delete(transform));
  }

  /** Per-transform counters keyed "mid/role" (a numbered key when mid is missing). */
  stats() {
    const out = {};
    let unnamed = 0;
    for (const transform of this.transforms) {
      let key = `${transform.mid ?? `?${unnamed++}`}/${transform.role}`;
      while (key in out) key += '+';
      out[key] = transform.snapshot();
    }
    return out;
  }

  async handleMessage(message) {
    switch (message?.type) {
      case 'epoch':
        try {
          await this.ring.installEpoch(message.epoch, message.secret, message.leaf);
        } catch (error) {
          this.post({ type: 'error', message: `epoch ${message.epoch} not installed: ${error.message}` });
        }
        break;
      case 'reset':
        this.ring.reset();
        break;
      case 'stats':
        this.post({ type: 'stats', id: message.id ?? null, epoch: this.ring.currentEpoch, transforms: this.stats() });
        break;
      case 'stream':
        this.attach(message.readable, message.writable, message.options, null);
        break;
      default:
        this.post({ type: 'error', message: `unknown message type ${message?.type}` });
    }
  }
}
